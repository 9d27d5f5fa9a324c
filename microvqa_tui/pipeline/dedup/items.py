"""The items one dedup kind compares, and the links found between them.

Items are addressed by position: the local store's items first (sorted by id, so runs are
reproducible), then those of the `--against` store, whose ids carry `EXTERNAL_PREFIX`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from microvqa_tui.errors import PipelineError
from store import Store

EXTERNAL_PREFIX = "ext:"

KIND_TABLE = {
    "image": ("figures", "figure_id"),
    "caption": ("captions", "caption_id"),
    "question": ("mcqs", "mcq_id"),
}
TEXT_COLUMN = {"caption": "text", "question": "question"}
TIME_COLUMN = {"image": "ingested_at", "caption": "created_at", "question": "created_at"}

# Generated spatial items share templated stems ("Which rotation maps view 1 onto view 2?")
# by design and differ in their images and answers; the same item twice is already one row
# (content-addressed ids), so question-text similarity says nothing about them. Their images
# still take part in image dedup.
TEMPLATED_ORIGINS = ("spatial",)


@dataclass
class Items:
    """Items of one kind from the local store (first `n_local`) and the external store."""

    ids: list[str]  # external ones carry EXTERNAL_PREFIX
    n_local: int
    query: np.ndarray  # bool: which items are searched for neighbours

    @property
    def local_ids(self) -> list[str]:
        return self.ids[: self.n_local]

    def allowed(self, a: np.ndarray, b: np.ndarray, against: bool) -> np.ndarray:
        """Which (a, b) position pairs may link: never an item with itself, and in
        --against mode only local ↔ external."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        keep = a != b
        if against:
            keep &= (a < self.n_local) != (b < self.n_local)
        return keep


def run_started(store: Store, run_id: str) -> datetime:
    row = store.get("runs", run_id, columns=["run_id", "started_at"])
    if row is None:
        raise PipelineError(
            f"no run {run_id!r} in the store", hint="`microvqa stats` lists recent runs"
        )
    return row["started_at"]


def load_items(store: Store, other: Store | None, kind: str, since: datetime | None) -> Items:
    table, key = KIND_TABLE[kind]
    columns = [key, TIME_COLUMN[kind]] + (["origin"] if kind == "question" else [])
    rows = store.rows(table, columns=columns)
    if kind == "question":
        rows = [r for r in rows if r["origin"] not in TEMPLATED_ORIGINS]
    rows.sort(key=lambda r: r[key])
    ids = [r[key] for r in rows]
    query = np.ones(len(ids), bool)
    if since is not None:
        times = [r[TIME_COLUMN[kind]] for r in rows]
        query = np.array([_after(t, since) for t in times], bool)
    n_local = len(ids)
    if other is not None:
        ext = sorted(other.ids(table))
        ids = ids + [EXTERNAL_PREFIX + i for i in ext]
        query = np.concatenate([query, np.zeros(len(ext), bool)])
    return Items(ids, n_local, query)


def _after(time: datetime | None, since: datetime) -> bool:
    # Stored times may or may not carry a zone; compare them as naive UTC.
    return time is not None and time.replace(tzinfo=None) > since.replace(tzinfo=None)


def split_id(item: str) -> tuple[bool, str]:
    if item.startswith(EXTERNAL_PREFIX):
        return True, item[len(EXTERNAL_PREFIX) :]
    return False, item


@dataclass
class Links:
    """Pairs of item positions at or above a threshold, with similarity and method."""

    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    sim: list[float] = field(default_factory=list)
    method: list[str] = field(default_factory=list)

    def add(self, a: np.ndarray, b: np.ndarray, sim: np.ndarray, method: str) -> None:
        self.a.extend(int(x) for x in a)
        self.b.extend(int(x) for x in b)
        self.sim.extend(float(x) for x in sim)
        self.method.extend([method] * len(a))

    def add_allowed(
        self,
        items: Items,
        against: bool,
        a: np.ndarray,
        b: np.ndarray,
        sim: np.ndarray,
        method: str,
    ) -> None:
        keep = items.allowed(a, b, against)
        self.add(np.asarray(a)[keep], np.asarray(b)[keep], np.asarray(sim)[keep], method)

    def extend(self, other: Links) -> None:
        self.a += other.a
        self.b += other.b
        self.sim += other.sim
        self.method += other.method

    def __len__(self) -> int:
        return len(self.a)
