from __future__ import annotations

import json
import os
import subprocess
import sys


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
    out = run_cli("stats", "--json", tmp_path=tmp_path)
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
    out = run_cli("funnel", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "funnel is empty" in out.stdout
    out = run_cli("funnel", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"funnel": []}
