"""`microvqa ingest`: JSON output, the summary table, errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import microvqa_tui.cli_ingest  # noqa: F401 - registers the command on the app
from microvqa_tui.cli import app
from microvqa_tui.errors import IngestError

try:
    from tests import ingest_helpers as h
except ImportError:
    import ingest_helpers as h  # type: ignore[no-redef]


def test_ingest_json(tmp_path):
    root = h.write_folder(tmp_path / "figs", 3)
    (root / "lonely.png").write_bytes(h.image_bytes(42))
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["--store", str(store), "ingest", str(root), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["kind"], data["read"], data["figures_new"]) == ("folder", 4, 3)
    assert data["quarantined"] == {"missing_caption": 1}

    again = CliRunner().invoke(
        app, ["--store", str(store), "ingest", str(root), "--kind", "folder", "--json"]
    )
    assert json.loads(again.stdout)["figures_new"] == 0


def test_ingest_table(tmp_path):
    root = h.write_folder(tmp_path / "figs", 2)
    (root / "lonely.png").write_bytes(h.image_bytes(42))
    result = CliRunner().invoke(
        app, ["--store", str(tmp_path / "store"), "ingest", str(root)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    for text in ("figures", "captions", "missing_caption", "the image has no caption", "items/s"):
        assert text in result.output


def test_ingest_missing_path(tmp_path):
    result = CliRunner().invoke(
        app, ["--store", str(tmp_path / "store"), "ingest", str(tmp_path / "nope")]
    )
    assert isinstance(result.exception, IngestError)
    assert "no such file" in str(result.exception)


def test_ingest_rejects_unknown_kind(tmp_path):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--kind", "zip"])
    assert result.exit_code == 2
