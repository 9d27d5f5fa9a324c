"""Cross-process locks and bookkeeping files in the store folder's `.microvqa/` directory.

- One write lock per table: every write takes it, so two processes (two ingests, a step and
  the TUI's review) never interleave a read-then-write on the same table.
- A presence lock per running step: the process holds it while the step runs; the kernel
  drops it when the process dies, however it dies, so a later run can tell a live run from
  a killed one.
- The marker that makes a folder a store, and the last version this tool wrote per table
  (doctor compares it with the table to detect a rolled-back table).

`flock` locks belong to an open file, so two threads of one process exclude each other too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

META_DIR = ".microvqa"
MARKER = "store.json"
FORMAT = 1


def meta_dir(store_path: Path) -> Path:
    return store_path / META_DIR


def marker_path(store_path: Path) -> Path:
    return meta_dir(store_path) / MARKER


def write_marker(store_path: Path) -> None:
    path = marker_path(store_path)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps({"format": FORMAT, "tool": "microvqa_tui"}) + "\n")


@contextlib.contextmanager
def hold(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created when missing), waiting for other holders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def is_held(path: Path) -> bool:
    """Whether some live process holds the lock on `path` (False when the file is missing)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def table_lock(store_path: Path, table: str) -> Path:
    return meta_dir(store_path) / "locks" / f"{table}.lock"


def presence_lock(store_path: Path, name: str) -> Path:
    return meta_dir(store_path) / "presence" / f"{name}.lock"


# ---------------------------------------------------------------------- written versions
def _versions_path(store_path: Path, table: str) -> Path:
    return meta_dir(store_path) / "versions" / table


def record_version(store_path: Path, table: str, version: int) -> None:
    """Remember the newest version this tool wrote of `table` (called under its write lock)."""
    path = _versions_path(store_path, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, f"{version}\n")


def written_version(store_path: Path, table: str) -> int | None:
    try:
        return int(_versions_path(store_path, table).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
