"""The fault harness's fork server (benchmarks/forkserver.py): it preloads the real libraries
without starting a thread, and its children behave like fresh processes (own session, env,
folder, log, exit status, SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from faultkit import FORK_SERVER_ENV  # noqa: E402
from forkserver import ForkServer  # noqa: E402

pytestmark = pytest.mark.slow

PROBE = """
import json, os, sys
print(json.dumps({
    "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0), "cwd": os.getcwd(),
    "env": os.environ.get("FAULTS_PROBE"), "threads": len(os.listdir("/proc/self/task")),
    "torch": "torch" in sys.modules, "lancedb": "lancedb" in sys.modules,
}))
sys.exit(3)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forkserver")
    env = {**os.environ, **FORK_SERVER_ENV, "PYTHONPATH": str(REPO)}
    fork = ForkServer(sys.executable, env, REPO, folder / "server.log")
    fork.start()
    yield fork, folder
    fork.close()


def test_the_server_preloads_torch_without_a_thread(server):
    fork, _ = server
    assert fork.info["threads"] == 1
    assert not any(line.startswith("torch") for line in fork.info["not_preloaded"])


def test_a_child_is_a_process_of_its_own(server, tmp_path):
    fork, _ = server
    env = {**os.environ, "FAULTS_PROBE": "yes"}
    child = fork.spawn([sys.executable, "-c", PROBE], env, tmp_path, tmp_path / "probe.log")
    assert child.wait(60) == 3
    seen = json.loads((tmp_path / "probe.log").read_text().strip().splitlines()[-1])
    assert seen["pid"] == child.pid == seen["pgid"] == seen["sid"]  # its own session
    assert seen["cwd"] == str(tmp_path) and seen["env"] == "yes"
    assert seen["threads"] == 1 and seen["torch"]  # preloaded, and still one thread
    assert not seen["lancedb"]  # LanceDB starts a thread on import: the child imports it


def test_sigkill_ends_a_child_and_its_status_says_so(server, tmp_path):
    fork, _ = server
    child = fork.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        dict(os.environ),
        tmp_path,
        tmp_path / "sleep.log",
    )
    assert child.poll() is None
    os.killpg(child.pid, signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL


def test_a_child_runs_the_cli_entry_point(server, tmp_path):
    fork, _ = server
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "microvqa_tui", "--help"]
    child = fork.spawn(command, env, REPO, tmp_path / "help.log")
    assert child.wait(120) == 0
    assert "Usage" in (tmp_path / "help.log").read_text()
