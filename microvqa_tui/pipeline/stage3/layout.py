"""MCQs in the MicroVQA++ layout: the MCQ's fields plus `image_caption` (its QA's caption,
else its figure's; see `common.captions`)."""

from __future__ import annotations

from typing import Any

from microvqa_tui.common.captions import caption_texts
from store import Store

LAYOUT_FIELDS = (
    "mcq_id",
    "figure_id",
    "question",
    "choices",
    "correct_index",
    "correct_answer",
    "cot",
    "task_str",
    "image_caption",
    "bloom_level",
    "bloom_confidence",
    "image_free_pass_rate",
    "pass_rate",
    "difficulty_tier",
    "status",
    "reason",
)


def microvqa_records(store: Store, where: str | None = None) -> list[dict[str, Any]]:
    """MCQs (optionally filtered) as MicroVQA++ records, including `image_caption`."""
    rows = store.rows("mcqs", where)
    if not rows:
        return []
    captions = caption_texts(store, rows, key="mcq_id")
    records = []
    for row in rows:
        record = {k: row.get(k) for k in LAYOUT_FIELDS if k != "image_caption"}
        record["image_caption"] = captions.get(row["mcq_id"], "")
        records.append({k: record[k] for k in LAYOUT_FIELDS})
    return records
