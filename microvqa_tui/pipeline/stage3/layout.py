"""MCQs in the MicroVQA++ layout: the MCQ's fields plus `image_caption` via the caption join
(mcq.qa_id -> qa.caption_id -> caption text; else the figure's first caption)."""

from __future__ import annotations

from typing import Any

from store import Store
from store.queries import in_list

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


def mcq_captions(store: Store, mcqs: list[dict[str, Any]]) -> dict[str, str]:
    """Caption text per mcq_id."""
    qa_ids = sorted({m["qa_id"] for m in mcqs if m.get("qa_id")})
    qa_caption = {
        r["qa_id"]: r["caption_id"]
        for r in store.get_many("qas", qa_ids, columns=["qa_id", "caption_id"])
    }
    caption_ids = sorted({c for c in qa_caption.values() if c})
    text = {
        r["caption_id"]: r["text"]
        for r in store.get_many("captions", caption_ids, columns=["caption_id", "text"])
    }
    out: dict[str, str] = {}
    missing: list[dict[str, Any]] = []
    for mcq in mcqs:
        caption = text.get(qa_caption.get(mcq.get("qa_id", ""), ""), "")
        if caption:
            out[mcq["mcq_id"]] = caption
        else:
            missing.append(mcq)
    figures = sorted({m["figure_id"] for m in missing})
    if figures:
        total = store.count("captions", in_list("figure_id", figures))
        by_figure: dict[str, str] = {}
        for row in store.page(
            "captions",
            where=in_list("figure_id", figures),
            columns=["figure_id", "text"],
            limit=max(total, 1),
        ):
            by_figure.setdefault(row["figure_id"], row["text"])
        for mcq in missing:
            out[mcq["mcq_id"]] = by_figure.get(mcq["figure_id"], "")
    return out


def microvqa_records(store: Store, where: str | None = None) -> list[dict[str, Any]]:
    """MCQs (optionally filtered) as MicroVQA++ records, including `image_caption`."""
    rows = store.rows("mcqs", where)
    if not rows:
        return []
    captions = mcq_captions(store, rows)
    records = []
    for row in rows:
        record = {k: row.get(k) for k in LAYOUT_FIELDS if k != "image_caption"}
        record["image_caption"] = captions.get(row["mcq_id"], "")
        records.append({k: record[k] for k in LAYOUT_FIELDS})
    return records
