"""Names and paths a source hands to ingest: non-UTF-8 file names are quarantined one by one,
a manifest cannot read files outside its folder, and the quarantine never keeps file
contents."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest

from microvqa_tui.ingest import ingest_source
from store import open_store

try:
    from tests import ingest_helpers as h
except ImportError:  # pytest's rootdir-relative import without a tests package
    import ingest_helpers as h  # type: ignore[no-redef]

BAD = b"bad\xff\xfename"  # not UTF-8: Python sees it with surrogate escapes


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "store")


def _write_raw(folder: Path, name: bytes, data: bytes) -> None:
    """Create a file whose name is raw bytes (a real non-UTF-8 name on Linux)."""
    with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
        handle.write(data)


def _quarantine(store) -> list[dict]:
    return store.rows("quarantine", columns=["ref", "reason", "detail", "payload", "source"])


def _run_status(store, run_id: str) -> str:
    return store.get("runs", run_id)["status"]


def test_non_utf8_file_names_in_a_folder_are_quarantined_one_by_one(store, tmp_path):
    root = h.write_folder(tmp_path / "src", 6)
    _write_raw(root, BAD + b".png", h.image_bytes(900))
    _write_raw(root, BAD + b".txt", b"A micrograph whose file name is not UTF-8.")
    sub = os.path.join(os.fsencode(root), b"dir\xfe")
    os.mkdir(sub)
    _write_raw(Path(os.fsdecode(sub)), b"inner.png", h.image_bytes(901))
    _write_raw(Path(os.fsdecode(sub)), b"inner.txt", b"An image in a non-UTF-8 folder.")

    report = ingest_source(store, root, h.settings(batch_size=4))

    assert report.figures_new == 6 and report.captions_new == 6
    assert report.quarantined == {"name_not_utf8": 2}
    rows = _quarantine(store)
    assert sorted(r["ref"] for r in rows) == ["bad\\xff\\xfename.png", "dir\\xfe/inner.png"]
    assert all("not UTF-8" in r["detail"] for r in rows)
    assert _run_status(store, report.run_id) == "done"
    again = ingest_source(store, root, h.settings(batch_size=4))
    assert again.figures_new == 0 and again.quarantine_new == 0


def test_non_utf8_member_names_in_a_tar_are_quarantined(store, tmp_path):
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tf:
        for key, members in h.wds_samples(3):
            for ext, data in members.items():
                h.tar_member(tf, f"{key}.{ext}", data)
        bad = os.fsdecode(BAD)
        h.tar_member(tf, f"{bad}.png", h.image_bytes(902))
        h.tar_member(tf, f"{bad}.txt", b"A tar member whose name is not UTF-8.")
    report = ingest_source(store, shard, h.settings(batch_size=2))
    assert report.figures_new == 3
    assert report.quarantined == {"name_not_utf8": 1}
    assert _quarantine(store)[0]["ref"] == "bad\\xff\\xfename"
    assert _run_status(store, report.run_id) == "done"


def _outside_manifest(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest naming three good images and files it has no business reading."""
    root = tmp_path / "m"
    manifest = h.write_manifest(root, 3)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-OUTSIDE the manifest's folder")
    outside_png = tmp_path / "outside.png"
    outside_png.write_bytes(h.image_bytes(950))
    (root / "notes.txt").write_text("SECRET-INSIDE, not an image")
    (root / "link.png").symlink_to(secret)
    rows = [
        {"image": "/etc/passwd", "caption": "The password file."},
        {"image": "../secret.txt", "caption": "Up and out of the folder."},
        {"image": "../../../../../../../../etc/hostname", "caption": "Far up."},
        {"image": "link.png", "caption": "A link that points out."},
        {"image": str(outside_png), "caption": "An absolute path to a real image."},
        {"image": "notes.txt", "caption": "A text file inside the folder."},
    ]
    with manifest.open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return manifest, outside_png


def test_manifest_paths_stay_under_its_folder(store, tmp_path):
    manifest, _ = _outside_manifest(tmp_path)
    report = ingest_source(store, manifest, h.settings())
    assert report.figures_new == 3
    by_ref = {r["ref"]: r for r in _quarantine(store)}
    assert {ref: r["reason"] for ref, r in by_ref.items()} == {
        "line 4": "unsafe_path",
        "line 5": "unsafe_path",
        "line 6": "unsafe_path",
        "line 7": "unsafe_path",
        "line 8": "unsafe_path",
        "line 9": "unsupported_format",
    }
    assert "--allow-outside-paths" in by_ref["line 4"]["detail"]
    passwd = Path("/etc/passwd").read_bytes()[:16].decode("utf-8", "replace")
    for row in by_ref.values():
        text = row["detail"] + row["payload"]
        assert "SECRET" not in text and (not passwd or passwd not in text)


def test_outside_paths_are_read_when_allowed(store, tmp_path):
    manifest, outside_png = _outside_manifest(tmp_path)
    report = ingest_source(store, manifest, h.settings(allow_outside_paths=True))
    assert report.figures_new == 4  # the three good ones and the real image outside
    paths = {r["image_path"] for r in store.rows("figures", columns=["image_path"])}
    assert str(outside_png) in paths
    for row in _quarantine(store):  # the rest is no image: still no content in the rows
        assert "SECRET" not in row["detail"] + row["payload"]
        assert row["reason"] in ("unsupported_format", "missing_file", "unreadable_file")


def test_parquet_path_column_stays_under_its_folder(store, tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "a.png").write_bytes(h.image_bytes(960))
    path = h.write_parquet(
        root / "pairs.parquet",
        {"image": ["a.png", "/etc/passwd"], "caption": [h.caption(1), h.caption(2)]},
        {"image": pa.string(), "caption": pa.string()},
    )
    report = ingest_source(store, path, h.settings())
    assert report.figures_new == 1 and report.quarantined == {"unsafe_path": 1}


def test_cli_flag_allows_outside_paths(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import microvqa_tui.cli_ingest  # noqa: F401 - registers the command
    from microvqa_tui.cli import app

    manifest, _ = _outside_manifest(tmp_path)
    monkeypatch.setenv("MICROVQA_STORE", str(tmp_path / "cli-store"))
    runner = CliRunner()
    strict = runner.invoke(app, ["ingest", str(manifest), "--json"])
    assert strict.exit_code == 0, strict.output
    assert json.loads(strict.stdout)["quarantined"]["unsafe_path"] == 5
    allowed = runner.invoke(app, ["ingest", str(manifest), "--allow-outside-paths", "--json"])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["figures_new"] == 1


def test_an_unsupported_file_is_described_without_its_bytes():
    from microvqa_tui.ingest.validate import check_image

    problem = check_image(b"root:x:0:0:root:/root:/bin/bash\n", h.settings())
    assert problem.reason == "unsupported_format" and "root" not in problem.detail
