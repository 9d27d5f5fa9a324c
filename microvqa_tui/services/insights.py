"""The numbers behind the Stats screen: selection funnel, score histogram, distributions.
No Textual here. Each figure reads one or two columns, never whole rows."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from microvqa_tui.vocabulary import (
    BLOOM_LEVELS,
    REVIEW_ACCEPTED,
    REVIEWS,
    STATUS_KEPT,
    bloom_label,
)

if TYPE_CHECKING:
    from store import Store

SCORE_BINS = 20


@dataclass
class Stats:
    tables: dict[str, int] = field(default_factory=dict)
    funnel: list[tuple[str, int]] = field(default_factory=list)
    run_counts: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    score_hist: list[int] = field(default_factory=list)
    score_summary: dict[str, float] = field(default_factory=dict)
    bloom: list[tuple[str, int]] = field(default_factory=list)
    qa_tasks: list[tuple[str, int]] = field(default_factory=list)
    mcq_tasks: list[tuple[str, int]] = field(default_factory=list)
    tiers: list[tuple[str, int]] = field(default_factory=list)
    reviews: list[tuple[str, int]] = field(default_factory=list)
    quarantine: list[tuple[str, int]] = field(default_factory=list)


def histogram(
    values: list[float], bins: int = SCORE_BINS, lo: float = 0.0, hi: float = 1.0
) -> list[int]:
    counts = [0] * bins
    width = (hi - lo) / bins
    for value in values:
        if value is None:
            continue
        index = int((value - lo) / width) if width else 0
        counts[min(max(index, 0), bins - 1)] += 1
    return counts


def _ordered(counter: Counter, order: list[str] | None = None) -> list[tuple[str, int]]:
    if order:
        known = [(k, counter[k]) for k in order if counter.get(k)]
        rest = [(k, v) for k, v in counter.most_common() if k not in order]
        return known + rest
    return counter.most_common()


def compute_stats(store: Store) -> Stats:
    stats = Stats()
    count = store.count
    stats.tables = {
        name: count(name) for name in ("figures", "captions", "qas", "mcqs", "signals", "decisions")
    }
    stats.funnel = [
        ("figures ingested", stats.tables["figures"]),
        ("captions", stats.tables["captions"]),
        ("QAs generated", stats.tables["qas"]),
        ("QAs kept by the graph", count("qas", f"status = '{STATUS_KEPT}'")),
        ("MCQs written", stats.tables["mcqs"]),
        ("MCQs selected", count("mcqs", f"status = '{STATUS_KEPT}'")),
        ("MCQs accepted in review", count("mcqs", f"review = '{REVIEW_ACCEPTED}'")),
    ]
    stats.run_counts = _run_counts(store)
    scores = [s for s in store.column("qas", "score") if s is not None]
    stats.score_hist = histogram(scores)
    if scores:
        ordered = sorted(scores)
        stats.score_summary = {
            "n": len(scores),
            "mean": sum(scores) / len(scores),
            "median": ordered[len(ordered) // 2],
            "min": ordered[0],
            "max": ordered[-1],
        }
    bloom = Counter(store.column("mcqs", "bloom_level"))
    stats.bloom = [(bloom_label(level), bloom.get(level, 0)) for level in sorted(BLOOM_LEVELS)]
    if bloom.get(None):
        stats.bloom.append(("not rated", bloom[None]))
    stats.qa_tasks = _ordered(Counter(store.column("qas", "task_type")))
    stats.mcq_tasks = _ordered(Counter(v or "(none)" for v in store.column("mcqs", "task_str")))
    stats.tiers = _ordered(
        Counter(v or "(not rated)" for v in store.column("mcqs", "difficulty_tier")),
        ["easy", "medium", "hard"],
    )
    stats.reviews = _ordered(Counter(store.column("mcqs", "review")), list(REVIEWS))
    quarantine = Counter(store.column("quarantine", "reason"))
    stats.quarantine = quarantine.most_common(8)
    return stats


def _run_counts(store: Store) -> list[tuple[str, str, dict[str, Any]]]:
    """The counts of the last run of each step, in the order the steps first ran."""
    columns = ["step", "status", "started_at", "counts_json"]
    latest: dict[str, dict[str, Any]] = {}
    for row in store.rows("runs", columns=columns, order_by=["started_at"]):
        latest[row["step"]] = row
    result = []
    for step, row in latest.items():
        try:
            counts = json.loads(row["counts_json"] or "{}")
        except json.JSONDecodeError:
            counts = {}
        flat = {k: v for k, v in counts.items() if isinstance(v, int | float)}
        result.append((step, row["status"], flat))
    return result
