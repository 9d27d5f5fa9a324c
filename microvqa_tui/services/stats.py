"""Store summaries shared by `microvqa stats` and the TUI."""

from __future__ import annotations

from collections import Counter
from typing import Any

from store import Store
from store.schema import TABLES


def quarantine_counts(store: Store) -> list[dict[str, Any]]:
    """Quarantined items per (stage, reason), most frequent first. Reads two columns only."""
    data = store.arrow("quarantine", columns=["stage", "reason"])
    counter = Counter(
        zip(data.column("stage").to_pylist(), data.column("reason").to_pylist(), strict=True)
    )
    return [
        {"stage": stage, "reason": reason, "count": count}
        for (stage, reason), count in counter.most_common()
    ]


def last_runs(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    return store.page(
        "runs",
        columns=["run_id", "step", "status", "started_at", "counts_json"],
        order_by=["-started_at", "run_id"],
        limit=limit,
    )


def store_stats(store: Store) -> dict[str, Any]:
    return {
        "store": str(store.path),
        "tables": {name: store.count(name) for name in TABLES},
        "quarantine": quarantine_counts(store),
        "last_runs": last_runs(store),
    }
