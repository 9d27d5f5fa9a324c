"""A preloaded fork server (a "zygote") for the fault harness: it imports the package and its
heavy libraries (torch, torch_geometric, llama_cpp, llguidance, transformers, LanceDB, ...)
once, then forks one child per command. A child is a real process running the CLI entry
point (or a script) exactly as `python -m microvqa_tui ARGS` would, in its own session (so
`os.killpg(child, SIGKILL)` kills it and whatever it started), with its own environment,
working folder and log file; it loads its models itself. Only the import time is shared.

Fork safety: the server starts no thread and touches no library state beyond importing it:
no store is opened, no model loaded, no torch op run (torch creates its thread pools on the
first parallel op, llama.cpp at the first model load). It checks before every fork that it
is still single-threaded (`/proc/self/task`) and refuses to fork otherwise.

    server = ForkServer(env, cwd); server.start()
    proc = server.spawn([python, "-m", "microvqa_tui", "run", "embed"], env, cwd, log)
    proc.wait(600)  # like subprocess.Popen: returncode, -9 when SIGKILLed
    server.close()  # the server ends at the end of its input (also when the harness dies)

Protocol: JSON lines. Requests on the server's stdin ({"argv", "env", "cwd", "log"}); on its
stdout, {"spawned": pid} per request in order, and {"exit": pid, "code": c} when a child ends
(c < 0: killed by signal -c, as Popen reports it). Children are reaped on SIGCHLD.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import random
import runpy
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

# Imported once by the server; so are the package's own modules that do not import a
# library of NOT_PRELOADED (those a child imports itself).
PRELOAD = (
    "numpy",
    "torch",
    "torchvision",
    "torch_geometric",
    "llama_cpp",
    "llama_cpp.llama_chat_format",
    "llama_cpp.llama_grammar",
    "llguidance",
    "llguidance.llamacpp",
    "llguidance.numpy",
    "transformers",
    "sentence_transformers",
    "open_clip",
    "typer",
    "rich",
)
PACKAGES = ("store", "microvqa_tui")
# LanceDB starts its background event-loop thread on import (its fork support is marked
# experimental); Ray starts threads too.
NOT_PRELOADED = ("lancedb", "ray")


# ---------------------------------------------------------------------- server side
def threads() -> int:
    return len(os.listdir("/proc/self/task"))


class _Blocked(BaseException):
    """Raised by an import of a library that must not be preloaded (a BaseException, so no
    `except Exception` fallback in the importing module takes it for a missing library)."""


class _BlockFinder:
    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if name.split(".")[0] in NOT_PRELOADED:
            raise _Blocked(name)
        return None


def _import(name: str) -> str | None:
    """Import `name`; on failure, forget every module that import brought in (a partial
    package left in sys.modules would differ from a fresh interpreter's); why it failed."""
    before = set(sys.modules)
    try:
        importlib.import_module(name)
        return None
    except (Exception, _Blocked) as exc:
        for module in set(sys.modules) - before:
            del sys.modules[module]
        return f"{name}: {type(exc).__name__} {exc}"[:120]


def _module_names(paths: list[str], prefix: str) -> list[str]:
    """Every module under a package's folders, found on disk (nothing imported)."""
    names = []
    for info in pkgutil.iter_modules(paths, prefix):
        names.append(info.name)
        if info.ispkg:
            sub = [str(Path(p) / info.name.rsplit(".", 1)[-1]) for p in paths]
            names += _module_names(sub, info.name + ".")
    return names


def preload() -> list[str]:
    """Import everything a step may import that is safe to fork; returns what was left out."""
    sys.meta_path.insert(0, _BlockFinder)
    try:
        failed = [why for name in PRELOAD if (why := _import(name))]
        for package in PACKAGES:
            if why := _import(package):
                failed.append(why)
                continue
            for name in _module_names(sys.modules[package].__path__, f"{package}."):
                if not name.endswith(".__main__") and (why := _import(name)):  # __main__ runs
                    failed.append(why)
    finally:
        sys.meta_path.remove(_BlockFinder)
    # transformers resolves its classes lazily: resolve the ones the steps use.
    with contextlib.suppress(Exception):
        import transformers

        for name in ("AutoConfig", "AutoModelForSequenceClassification", "AutoTokenizer"):
            getattr(transformers, name)
    return failed


def serve() -> None:
    """The server loop: fork a child per request line, report exits, stop at EOF."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of imported modules go to stderr, not into the protocol
    failed = preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    ready = {"ready": True, "threads": threads(), "not_preloaded": failed}
    out.write(json.dumps(ready) + "\n")
    stdin = sys.stdin.fileno()
    children: set[int] = set()
    pending = b""
    while True:
        readable, _, _ = select.select([stdin, wake_r], [], [], 1.0)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        _reap(children, out)
        if stdin not in readable:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:  # the harness closed our input (or died): stop
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if threads() != 1:  # forking a multi-threaded process is not safe
                out.write(json.dumps({"error": f"server has {threads()} threads"}) + "\n")
                continue
            started_r, started_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(started_r)
                _child(json.loads(line), (out.fileno(), stdin, wake_r, wake_w), started_w)
            os.close(started_w)
            os.read(started_r, 1)  # the child has its own session: killpg(pid) reaches it
            os.close(started_r)
            children.add(pid)
            out.write(json.dumps({"spawned": pid}) + "\n")


def _reap(children: set[int], out) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            out.write(json.dumps({"exit": pid, "code": code}) + "\n")


def _child(request: dict, server_fds: tuple[int, ...], started: int) -> None:
    """In the forked child: become a fresh-looking process running `argv`; never returns."""
    code = 1
    try:
        os.setsid()
        os.write(started, b"1")
        os.close(started)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in server_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # A fresh interpreter seeds its generators from the OS; the fork copied the server's.
        random.seed()
        with contextlib.suppress(ImportError):
            import numpy

            numpy.random.seed(int.from_bytes(os.urandom(4), "little"))
        code = _run(request["argv"][1:])
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run(args: list[str]) -> int:
    """Run `-m module ARGS` or `script.py ARGS` as __main__; the exit code as Python gives it."""
    try:
        if args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path[0] = ""
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        elif args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            sys.path[0] = os.getcwd()
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(args)
            sys.path[0] = str(Path(args[0]).resolve().parent)
            runpy.run_path(args[0], run_name="__main__")
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130


# ---------------------------------------------------------------------- client side
class ForkServer:
    """The harness's handle on a running server; safe to use from several threads (one
    thread reads the server's messages and hands them out)."""

    def __init__(self, python: str, env: dict[str, str], cwd: Path, log: Path):
        self.python, self.env, self.cwd, self.log = python, env, cwd, log
        self.proc: subprocess.Popen | None = None
        self.exits: dict[int, int] = {}
        self.info: dict = {}
        self._replies: list[dict] = []
        self._ended = False
        self._cond = threading.Condition()
        self._spawning = threading.Lock()

    def start(self, timeout: float = 600) -> dict:
        """Start the server and wait until it has imported everything; returns its greeting."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as errors:
            self.proc = subprocess.Popen(
                [self.python, str(Path(__file__).resolve()), "--serve"],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        threading.Thread(target=self._read, daemon=True).start()
        self.info = self._reply(timeout)
        return self.info

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
        assert self.proc is not None and self.proc.stdin is not None
        request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
        with self._spawning:  # replies come in request order
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._reply(60)
        if "spawned" not in reply:
            raise RuntimeError(f"fork server: {reply.get('error', reply)}")
        return ForkedProcess(self, reply["spawned"])

    def close(self) -> None:
        """Stop the server (it exits at the end of its input) and wait for it."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def wait_exit(self, pid: int, timeout: float | None) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: pid in self.exits or self._ended, timeout):
                raise subprocess.TimeoutExpired(str(pid), timeout or 0)
            if pid not in self.exits:
                raise RuntimeError(f"fork server ended (see {self.log})")
            return self.exits[pid]

    def _reply(self, timeout: float) -> dict:
        with self._cond:
            if not self._cond.wait_for(lambda: self._replies or self._ended, timeout):
                raise RuntimeError(f"fork server: no reply within {timeout} s")
            if not self._replies:
                raise RuntimeError(f"fork server ended (see {self.log})")
            return self._replies.pop(0)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._cond:
                if "exit" in message:
                    self.exits[message["exit"]] = message["code"]
                else:
                    self._replies.append(message)
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()


class ForkedProcess:
    """A child of the fork server, used like `subprocess.Popen` (pid, wait, poll, returncode)."""

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid = server, pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.server.wait_exit(self.pid, timeout)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exits.get(self.pid)
        return self.returncode


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
