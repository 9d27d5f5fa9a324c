"""Building blocks of the fault harness (`benchmarks/faults.py`), each usable on its own.

- `Cli`: run `python -m microvqa_tui ...` on one store, in its own process group, with the
  tree under test first on PYTHONPATH: a fresh interpreter per command, or a child forked by
  a preloaded fork server (`forkserver.py`), which saves the imports but not the work;
- `wait_run_open`: wait until a started step has opened its run record (its presence lock);
- `kill_after`: SIGKILL a running command after a delay (False when it finished first);
- `store_state` / `compare_states` / `duplicate_keys`: what a store holds, table by table
  (primary-key sets and the deterministic "key columns" of each row), and how two differ;
- `export_state`: the files of an export folder, by content hash.

Timestamps, run ids and random ids (decisions, runs) never take part in a comparison: two
runs of the same step on the same input must agree on everything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forkserver import ForkedProcess, ForkServer

from store.locks import presence_lock

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MANIFEST = REPO / "assets" / "sample" / "manifest.jsonl"

# The columns that must agree between two runs (besides the primary key). Floats are rounded.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "figures": ("content_hash", "width", "height", "format", "source_ref"),
    "captions": ("figure_id", "text"),
    "qas": ("figure_id", "caption_id", "question", "answer", "task_type", "status", "score"),
    "mcqs": (
        "qa_id",
        "question",
        "choices",
        "correct_index",
        "status",
        "reason",
        "review",
        "bloom_level",
        "difficulty_tier",
    ),
    "signals": ("item_id", "name", "value", "available"),
    "quarantine": ("stage", "ref", "reason"),
    "dup_groups": ("kind", "member_ids", "keeper_id", "decision"),
}
# Tables whose ids are random or per run: compared as multisets of these columns.
MULTISET_COLUMNS: dict[str, tuple[str, ...]] = {
    "decisions": ("item_type", "item_id", "action"),
    "edges": ("src_id", "dst_id", "relation"),
}
SKIPPED_TABLES = ("runs",)  # killed runs leave their own records; that is expected
EMBEDDING_COLUMNS = ("figure_id", "model")
FLOAT_DIGITS = 4
# Set for the fork server only: OpenBLAS (numpy) and Arrow's jemalloc start a thread at import
# otherwise. LanceDB (a background event loop thread) is not preloaded at all.
FORK_SERVER_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
Process = subprocess.Popen | ForkedProcess


# ---------------------------------------------------------------------- running the CLI
@dataclass
class Cli:
    """`python -m microvqa_tui` of the tree under test, with fixed settings overrides; with
    `fork` set (`start_fork_server`), commands are forked from a preloaded server."""

    python: str = sys.executable
    repo: Path = REPO
    settings_env: dict[str, str] = field(default_factory=dict)
    fork: ForkServer | None = None

    def start_fork_server(self, log: Path) -> dict:
        """Start the fork server with the environment every command gets (but the store)."""
        env = self.env(log.parent)
        env.pop("MICROVQA_STORE")
        # Both libraries start a thread when imported unless told not to; a process that
        # forks must have none. Only the server gets these: its children inherit the state.
        env.update(FORK_SERVER_ENV)
        self.fork = ForkServer(self.python, env, self.repo, log)
        return self.fork.start()

    def close(self) -> None:
        if self.fork is not None:
            self.fork.close()
            self.fork = None

    def env(self, store: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MICROVQA_")}
        env.update(self.settings_env)
        env["MICROVQA_STORE"] = str(store)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.repo), os.environ.get("PYTHONPATH", "")) if p
        )
        return env

    def command(self, args: list[str]) -> list[str]:
        return [self.python, "-m", "microvqa_tui", *args]

    def start(self, args: list[str], store: Path, log: Path) -> Process:
        """Start a command in its own process group (so a kill takes its children too)."""
        return self.start_command(self.command(args), store, log)

    def start_command(self, command: list[str], store: Path, log: Path) -> Process:
        log.parent.mkdir(parents=True, exist_ok=True)
        if self.fork is not None:
            return self.fork.spawn(command, self.env(store), self.repo, log)
        handle = log.open("wb")
        try:
            return subprocess.Popen(
                command,
                env=self.env(store),
                cwd=self.repo,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            handle.close()

    def run(self, args: list[str], store: Path, log: Path, timeout: float = 600) -> Finished:
        """Run a command to its end; also times when it opened its run record."""
        clock = time.perf_counter()
        before = presence_files(store)
        proc = self.start(args, store, log)
        opened = wait_run_open(proc, store, before, timeout)
        open_s = time.perf_counter() - clock if opened else None
        try:
            code = proc.wait(max(1.0, timeout - (time.perf_counter() - clock)))
        except subprocess.TimeoutExpired:
            kill_group(proc)
            code = -9
        return Finished(code, time.perf_counter() - clock, tail(log), open_s)


@dataclass
class Finished:
    code: int
    seconds: float
    output: str
    open_s: float | None = None  # when the run record opened (None: it never did)

    @property
    def work_s(self) -> float:
        """Seconds from the run record opening to the process's end."""
        return self.seconds - (self.open_s if self.open_s is not None else self.seconds)


def tail(log: Path, chars: int = 600) -> str:
    try:
        return log.read_bytes()[-chars:].decode("utf-8", "replace")
    except OSError:
        return ""


def presence_files(store: Path) -> set[str]:
    """The presence locks in `store` now: a step creates one as it opens its run record."""
    try:
        return set(os.listdir(presence_lock(store, "x").parent))
    except OSError:
        return set()


def wait_run_open(proc: Process, store: Path, before: set[str], timeout: float = 600) -> bool:
    """Wait until `proc` opened its run record (a presence lock not in `before` appeared);
    False when the process ended (or `timeout` passed) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if presence_files(store) - before:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def kill_group(proc: Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_after(proc: Process, delay: float) -> bool:
    """SIGKILL `proc` (and its group) after `delay` s; False when it had already exited."""
    try:
        proc.wait(delay)
        return False
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return True


def copy_store(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---------------------------------------------------------------------- store contents
@dataclass
class TableState:
    rows: int
    keyed: dict[str, tuple] = field(default_factory=dict)  # primary key -> key columns
    multiset: Counter = field(default_factory=Counter)  # for tables without stable ids
    duplicates: int = 0  # rows sharing a primary key


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, FLOAT_DIGITS)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def _table_columns(name: str, available: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """(primary key or None, compared columns) of a table."""
    from store.schema import TABLES

    if name in MULTISET_COLUMNS:
        return None, MULTISET_COLUMNS[name]
    if name in TABLES:
        return TABLES[name][1], KEY_COLUMNS.get(name, ())
    # embedding tables (emb_<space>)
    return "item_id", tuple(c for c in EMBEDDING_COLUMNS if c in available)


def read_table(db: Any, name: str) -> TableState:
    table = db.open_table(name)
    available = table.schema.names
    key, columns = _table_columns(name, available)
    wanted = [c for c in ((key,) if key else ()) + columns if c in available]
    data = table.search().select(wanted).limit(table.count_rows() or 1).to_arrow().to_pylist()
    state = TableState(rows=len(data))
    for row in data:
        values = tuple(_norm(row.get(c)) for c in columns)
        if key is None:
            state.multiset[values] += 1
            continue
        if row[key] in state.keyed:
            state.duplicates += 1
        state.keyed[row[key]] = values
    return state


def store_state(path: Path) -> dict[str, TableState]:
    """Every table of the store at `path` (runs left out), read directly with LanceDB."""
    import lancedb

    db = lancedb.connect(str(path))
    names = db.table_names(limit=1000) if _takes_limit(db) else db.table_names()
    return {name: read_table(db, name) for name in sorted(names) if name not in SKIPPED_TABLES}


def _takes_limit(db: Any) -> bool:
    import inspect

    return "limit" in inspect.signature(db.table_names).parameters


def duplicate_keys(state: dict[str, TableState]) -> dict[str, int]:
    return {name: t.duplicates for name, t in state.items() if t.duplicates}


def compare_states(
    reference: dict[str, TableState],
    got: dict[str, TableState],
    *,
    ignore: dict[str, tuple[str, ...]] | None = None,
    examples: int = 3,
) -> list[str]:
    """Human-readable differences of `got` from `reference`; [] when they agree.
    `ignore` names columns (per table, "*" for the whole table) left out."""
    ignore = ignore or {}
    problems: list[str] = []
    for name in sorted(set(reference) | set(got)):
        skip = ignore.get(name, ())
        if "*" in skip:
            continue
        # A missing table reads as an empty one (some commands create tables on open).
        ref, new = reference.get(name, TableState(0)), got.get(name, TableState(0))
        if new.duplicates:
            problems.append(f"{name}: {new.duplicates} duplicate primary keys")
        if name in MULTISET_COLUMNS:
            if ref.multiset != new.multiset:
                extra = sum((new.multiset - ref.multiset).values())
                missing = sum((ref.multiset - new.multiset).values())
                problems.append(f"{name}: {extra} extra and {missing} missing rows")
            continue
        problems.extend(_keyed_differences(name, ref, new, skip, examples))
    return problems


def _keyed_differences(
    name: str, ref: TableState, new: TableState, skip: tuple[str, ...], examples: int
) -> list[str]:
    out = []
    missing = sorted(set(ref.keyed) - set(new.keyed))
    extra = sorted(set(new.keyed) - set(ref.keyed))
    if missing:
        out.append(f"{name}: {len(missing)} ids missing, e.g. {missing[:examples]}")
    if extra:
        out.append(f"{name}: {len(extra)} ids extra, e.g. {extra[:examples]}")
    columns = KEY_COLUMNS.get(name, EMBEDDING_COLUMNS)
    changed = Counter()
    sample: list[str] = []
    for key in sorted(set(ref.keyed) & set(new.keyed)):
        for i, column in enumerate(columns):
            if column in skip or i >= len(ref.keyed[key]):
                continue
            before, after = ref.keyed[key][i], new.keyed[key][i]
            if before != after:
                changed[column] += 1
                if len(sample) < examples:
                    sample.append(f"{key[:12]}.{column}: {before!r:.40} -> {after!r:.40}")
    if changed:
        counts = ", ".join(f"{c} x{n}" for c, n in changed.most_common())
        out.append(f"{name}: rows differ ({counts}), e.g. {'; '.join(sample)}")
    return out


# ---------------------------------------------------------------------- export folders
def export_state(folder: Path) -> dict[str, str]:
    """file -> sha256 of everything in an export folder, except the dataset card (it holds
    the export time); the manifest counts by its file list and completeness only."""
    state: dict[str, str] = {}
    if not folder.is_dir():
        return state
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative == "README.md":
            continue
        if relative == "export.json":
            data = json.loads(path.read_text("utf-8"))
            body = json.dumps([data.get("complete"), sorted(data.get("files", []))])
            state[relative] = hashlib.sha256(body.encode()).hexdigest()[:16]
            continue
        state[relative] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return state


def compare_exports(reference: dict[str, str], got: dict[str, str]) -> list[str]:
    if reference == got:
        return []
    missing = sorted(set(reference) - set(got))
    extra = sorted(set(got) - set(reference))
    changed = sorted(k for k in set(reference) & set(got) if reference[k] != got[k])
    return [f"export: missing {missing[:3]}, extra {extra[:3]}, changed {changed[:3]}"]
