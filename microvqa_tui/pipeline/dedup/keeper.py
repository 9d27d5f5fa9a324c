"""Which member of a duplicate group is proposed as the keeper.

The rule, criteria in order (the first that differs decides; higher wins unless noted):

1. **already in the reference store** — in a `dedup --against` group the other store's member
   is the keeper (it is already in the set being protected); only local members are rejected.
2. **review state** — a person's verdict: accepted (2) > not reviewed (1) > rejected (0).
   For an image or a caption, the best verdict among the MCQs of its figure; for a question,
   the MCQ's own.
3. **pipeline status** (questions only) — kept (2) > pending (1) > flagged / held out (0).
4. **graph score** — the HiCQA-Graph consistency score (`qas.score`): for a question its QA's,
   for a caption the best of the QAs made from it, for an image the best of its figure's QAs.
   Unscored counts as lowest.
5. **resolution** — width × height of the (item's) figure.
6. **file size** — bytes of the figure's image (less compression).
7. **text length** — longer caption / question (more information).
8. **earliest** — created / ingested first.
9. **id** — smallest, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from microvqa_tui.vocabulary import (
    REVIEW_ACCEPTED,
    REVIEW_REJECTED,
    STATUS_FLAGGED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
)
from store import Store

CRITERIA = ("review", "status", "graph score", "resolution", "file size", "text length", "earliest")
_MISSING = float("-inf")


def _review_rank(review: str | None) -> int:
    if review == REVIEW_ACCEPTED:
        return 2
    if review == REVIEW_REJECTED:
        return 0
    return 1


def _status_rank(status: str | None) -> int:
    if status == STATUS_KEPT:
        return 2
    if status in (STATUS_FLAGGED, STATUS_HELD_OUT):
        return 0
    return 1


def _ts(value: Any) -> float:
    try:
        return value.timestamp()
    except AttributeError:
        return 0.0


def _read(store: Store, table: str, columns: list[str]) -> list[dict[str, Any]]:
    return store.rows(table, columns=columns)


def quality_keys(store: Store, kind: str, ids: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Criteria 2–8 of the rule for each item id (tuples compare element-wise, higher
    better; 'earliest' is stored negated)."""
    wanted = set(ids)
    figures = {
        r["figure_id"]: r
        for r in _read(
            store, "figures", ["figure_id", "width", "height", "byte_size", "ingested_at"]
        )
    }
    mcqs = _read(
        store,
        "mcqs",
        ["mcq_id", "figure_id", "qa_id", "review", "status", "question", "created_at"],
    )
    qas = _read(store, "qas", ["qa_id", "figure_id", "caption_id", "score"])
    figure_review: dict[str, int] = {}
    for m in mcqs:
        figure_review[m["figure_id"]] = max(
            figure_review.get(m["figure_id"], 0), _review_rank(m["review"])
        )
    qa_score = {q["qa_id"]: (q["score"] if q["score"] is not None else _MISSING) for q in qas}
    best_by: dict[tuple[str, str], float] = {}
    for q in qas:
        score = qa_score[q["qa_id"]]
        for key in (("figure", q["figure_id"]), ("caption", q["caption_id"])):
            best_by[key] = max(best_by.get(key, _MISSING), score)

    def figure_part(fid: str) -> tuple[float, float]:
        f = figures.get(fid) or {}
        return float((f.get("width") or 0) * (f.get("height") or 0)), float(f.get("byte_size") or 0)

    out: dict[str, tuple[float, ...]] = {}
    if kind == "image":
        for fid in wanted:
            res, size = figure_part(fid)
            f = figures.get(fid) or {}
            out[fid] = (
                figure_review.get(fid, 1),
                1,
                best_by.get(("figure", fid), _MISSING),
                res,
                size,
                0,
                -_ts(f.get("ingested_at")),
            )
    elif kind == "caption":
        captions = _read(store, "captions", ["caption_id", "figure_id", "text", "created_at"])
        for c in captions:
            if c["caption_id"] not in wanted:
                continue
            fid = c["figure_id"]
            res, size = figure_part(fid)
            score = best_by.get(
                ("caption", c["caption_id"]), best_by.get(("figure", fid), _MISSING)
            )
            out[c["caption_id"]] = (
                figure_review.get(fid, 1),
                1,
                score,
                res,
                size,
                len(c["text"] or ""),
                -_ts(c["created_at"]),
            )
    elif kind == "question":
        for m in mcqs:
            if m["mcq_id"] not in wanted:
                continue
            res, size = figure_part(m["figure_id"])
            out[m["mcq_id"]] = (
                _review_rank(m["review"]),
                _status_rank(m["status"]),
                qa_score.get(m["qa_id"], _MISSING),
                res,
                size,
                len(m["question"] or ""),
                -_ts(m["created_at"]),
            )
    return out


def choose_keeper(
    member_ids: Sequence[str],
    qualities: dict[str, tuple[float, ...]],
    external_prefix: str = "ext:",
) -> tuple[int, str]:
    """(position of the keeper in `member_ids`, why)."""
    external = [i for i, m in enumerate(member_ids) if m.startswith(external_prefix)]
    if external:
        pos = min(external, key=lambda i: member_ids[i])
        return pos, "already in the --against store"
    default = (1, 1, _MISSING, 0.0, 0.0, 0, 0.0)

    def key(i: int):
        q = qualities.get(member_ids[i], default)
        return tuple(-x for x in q), member_ids[i]

    order = sorted(range(len(member_ids)), key=key)
    best = order[0]
    if len(order) == 1:
        return best, "only member"
    a = qualities.get(member_ids[best], default)
    b = qualities.get(member_ids[order[1]], default)
    for name, x, y in zip(CRITERIA, a, b, strict=True):
        if x != y:
            return best, f"{name}: {_fmt(name, x)} vs {_fmt(name, y)}"
    return best, "all criteria equal: smallest id"


def _fmt(name: str, value: float) -> str:
    if name == "review":
        return {2: "accepted", 1: "unreviewed", 0: "rejected"}.get(int(value), str(value))
    if name == "status":
        return {2: "kept", 1: "pending", 0: "flagged/held out"}.get(int(value), str(value))
    if value == _MISSING:
        return "none"
    if name == "earliest":
        from datetime import UTC, datetime

        return datetime.fromtimestamp(-value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if name == "graph score":
        return f"{value:.3f}"
    return f"{int(value):,}"
