"""Which MCQs an export (or an evaluation of the store) takes.

The rule:
1. `review == rejected` → never.
2. `review == accepted` → yes (a person's verdict outranks the pipeline's status).
3. `status == kept` (and not rejected) → yes.
4. `status == flagged` → only with `include_flagged`; `status == held_out` → only with
   `include_held_out` (neither rejected by a person).
5. Anything else (pending and unreviewed) → only with `include_pending`: not curated yet
   (e.g. an imported set exported as it came, after the audit left it pending).
6. Then duplicates: an MCQ is left out when any of its images is a rejected member of a
   resolved image group, or its caption (its QA's caption; without one, every caption of its
   figure) is a rejected member of a resolved caption group. (Question groups reject their
   MCQs' review directly, rule 1.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.common.captions import item_captions
from microvqa_tui.pipeline.dedup.decisions import rejected_members
from microvqa_tui.pipeline.dedup.storeio import read_rows
from microvqa_tui.vocabulary import (
    REVIEW_ACCEPTED,
    REVIEW_REJECTED,
    STATUS_FLAGGED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
)
from store import Store

MCQ_COLUMNS = [
    "mcq_id",
    "qa_id",
    "figure_id",
    "image_ids",
    "question",
    "choices",
    "correct_index",
    "correct_answer",
    "cot",
    "task_str",
    "family",
    "bloom_level",
    "difficulty_tier",
    "status",
    "review",
    "origin",
    "model",
    "created_at",
    "run_id",
]
FIGURE_COLUMNS = [
    "figure_id",
    "image_path",
    "original_id",
    "format",
    "width",
    "height",
    "article_id",
    "license",
    "attribution",
    "source",
    "source_kind",
]


@dataclass
class Selection:
    mcqs: list[dict[str, Any]]
    figures: dict[str, dict[str, Any]]  # metadata (no bytes) of every image the MCQs use
    captions: dict[str, str]  # mcq_id -> image caption
    excluded: Counter = field(default_factory=Counter)  # reason -> count
    rule: str = ""


def selection_rule(
    include_flagged: bool, include_held_out: bool, include_pending: bool = False
) -> str:
    parts = ["review = accepted, or status = kept and not rejected"]
    if include_flagged:
        parts.append("flagged (not rejected)")
    if include_held_out:
        parts.append("held out (not rejected)")
    if include_pending:
        parts.append("pending (not rejected)")
    return "; ".join(parts) + "; minus rejected near-duplicates"


def is_selected(
    row: dict[str, Any],
    include_flagged: bool,
    include_held_out: bool,
    include_pending: bool = False,
) -> tuple[bool, str]:
    review, status = row.get("review"), row.get("status")
    if review == REVIEW_REJECTED:
        return False, "rejected"
    if review == REVIEW_ACCEPTED or status == STATUS_KEPT:
        return True, ""
    if status == STATUS_FLAGGED:
        return include_flagged, "flagged"
    if status == STATUS_HELD_OUT:
        return include_held_out, "held_out"
    return include_pending, f"not curated ({status or 'pending'})"


def select_mcqs(
    store: Store,
    *,
    include_flagged: bool = False,
    include_held_out: bool = False,
    include_pending: bool = False,
) -> Selection:
    excluded: Counter = Counter()
    rejected = rejected_members(store)
    chosen = []
    for row in read_rows(store, "mcqs", MCQ_COLUMNS):
        ok, reason = is_selected(row, include_flagged, include_held_out, include_pending)
        if not ok:
            excluded[reason] += 1
            continue
        images = list(row["image_ids"] or []) or [row["figure_id"]]
        if row["figure_id"] not in images:
            images.insert(0, row["figure_id"])
        row["image_ids"] = images
        if any(fid in rejected["image"] for fid in images):
            excluded["duplicate image"] += 1
            continue
        chosen.append(row)
    figure_ids = sorted({fid for row in chosen for fid in row["image_ids"]})
    figures = {
        f["figure_id"]: f for f in store.get_many("figures", figure_ids, columns=FIGURE_COLUMNS)
    }
    kept = []
    for row in chosen:
        if any(fid not in figures for fid in row["image_ids"]):
            excluded["missing figure"] += 1
            continue
        kept.append(row)
    captions, dropped = _captions(store, kept, rejected["caption"])
    kept = [row for row in kept if row["mcq_id"] not in dropped]
    if dropped:
        excluded["duplicate caption"] += len(dropped)
    kept.sort(key=lambda r: r["mcq_id"])
    rule = selection_rule(include_flagged, include_held_out, include_pending)
    return Selection(kept, figures, captions, excluded, rule)


def _captions(
    store: Store, mcqs: list[dict[str, Any]], rejected: set[str]
) -> tuple[dict[str, str], set[str]]:
    """mcq_id -> caption text (see `common.captions`), and the MCQs whose every usable
    caption was rejected as a duplicate."""
    found = item_captions(store, mcqs, key="mcq_id", rejected=rejected)
    dropped = {mcq_id for mcq_id, caption in found.items() if caption is None}
    texts = {
        row["mcq_id"]: (c.text if (c := found.get(row["mcq_id"])) else "")
        for row in mcqs
        if row["mcq_id"] not in dropped
    }
    return texts, dropped
