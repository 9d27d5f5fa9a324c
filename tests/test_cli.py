from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, tmp_path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path), "MICROVQA_STORE": str(tmp_path / "store")}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "microvqa_tui", *args], capture_output=True, text=True, env=env
    )


def test_help_lists_commands(tmp_path):
    out = run_cli("--help", tmp_path=tmp_path)
    assert out.returncode == 0
    for command in ("ingest", "stats", "doctor", "tui", "config", "run", "funnel"):
        assert command in out.stdout


def test_stats_json_on_empty_store(tmp_path):
    out = run_cli("--create", "stats", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tables"]["figures"] == 0
    assert data["quarantine"] == []


def test_errors_are_one_line_without_traceback(tmp_path):
    out = run_cli("stats", tmp_path=tmp_path, extra_env={"MICROVQA_INGEST__WORKERS": "-4"})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "ingest.workers" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_doctor_json_reports_checks(tmp_path):
    out = run_cli("doctor", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    names = {check["name"] for check in data["checks"]}
    assert {"python", "torch", "llama-cpp", "lancedb"} <= names


def test_funnel_command_on_empty_and_json(tmp_path):
    from store import open_store

    open_store(tmp_path / "store")
    out = run_cli("funnel", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "funnel is empty" in out.stdout
    out = run_cli("funnel", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"funnel": []}


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, out.stdout
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr


def test_read_only_commands_refuse_a_folder_that_is_not_a_store(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    env = {"MICROVQA_STORE": str(folder)}
    for command in (["stats"], ["funnel"], ["run", "select"], ["dedup", "groups"]):
        error = one_line_error(run_cli(*command, tmp_path=tmp_path, extra_env=env))
        assert "is not a microvqa store" in error
    # creating a store among someone's files is refused too
    error = one_line_error(run_cli("ingest", str(folder), tmp_path=tmp_path, extra_env=env))
    assert "not a microvqa store" in error
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    missing = {"MICROVQA_STORE": str(tmp_path / "nowhere")}
    assert "does not exist" in one_line_error(
        run_cli("stats", tmp_path=tmp_path, extra_env=missing)
    )
    assert not (tmp_path / "nowhere").exists()


def _newest(folder: Path, suffix: str) -> Path:
    return max(folder.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime_ns)


def test_a_damaged_store_gives_one_line_errors_and_doctor_says_how_to_recover(tmp_path):
    import ingest_helpers as h

    from microvqa_tui.ingest import ingest_source
    from store import open_store

    store = open_store(tmp_path / "store")
    ingest_source(store, h.write_folder(tmp_path / "a", 12), h.settings(batch_size=4))
    _newest(store.path / "captions.lance" / "data", ".lance").unlink()
    out = run_cli("ingest", str(h.write_folder(tmp_path / "b", 4, start=50)), tmp_path=tmp_path)
    assert "captions" in one_line_error(out)

    report = json.loads(run_cli("doctor", "--json", tmp_path=tmp_path).stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["table:figures"]["ok"] and not checks["table:captions"]["ok"]
    detail = checks["table:captions"]["detail"]
    assert detail.startswith("damaged") and "microvqa doctor --restore captions" in detail
    table, version = detail.rsplit("--restore ", 1)[1].split()
    out = run_cli("doctor", "--restore", table, version, "--json", tmp_path=tmp_path)
    report = json.loads(out.stdout)
    assert report["actions"] and {c["name"]: c for c in report["checks"]}["table:captions"]["ok"]
    assert open_store(store.path).count("captions") == 8  # two of the three batches


def test_doctor_detects_a_table_rolled_back_by_a_deleted_version_file(tmp_path):
    import ingest_helpers as h

    from microvqa_tui.ingest import ingest_source
    from store import open_store

    store = open_store(tmp_path / "store")
    ingest_source(store, h.write_folder(tmp_path / "a", 8), h.settings(batch_size=4))
    versions = store.path / "figures.lance" / "_versions"
    min(versions.glob("*.manifest")).unlink()  # v2 manifest names count down: min is newest
    report = json.loads(run_cli("doctor", "--json", tmp_path=tmp_path).stdout)
    detail = {c["name"]: c for c in report["checks"]}["table:figures"]["detail"]
    assert detail.startswith("rolled back")
