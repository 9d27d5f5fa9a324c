"""A small MicroVQA++-layout MCQ file to audit, with planted inconsistent items (labels known).

Item i shows topic i's figure and caption (tests/dataset_helpers.TOPICS); a planted item
carries another topic's question, choices and answer (a MicroVQA++-style wrong pairing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset_helpers import TOPICS, caption_for, encode, textured_image
from ingest_helpers import MICROVQA_PP_TYPES, write_parquet

from microvqa_tui.pipeline.stage3.cot import answer_line

TASKS = ("expert_visual_understanding", "hypothesis_generation", "experiment_proposal")


def item(topic_index: int, n: int) -> dict[str, Any]:
    """Question, choices (correct one at topic_index % 4), answer and CoT about a topic."""
    what, sample, stain, finding = TOPICS[topic_index]
    others = [TOPICS[(topic_index + k) % n][3] for k in (3, 5, 9)]
    position = topic_index % 4
    choices = [*others[:position], finding, *others[position:]]
    cot = (
        f"Observation: the {stain} signal in the {sample} shows {finding}. "
        f"Reasoning: of the options, only this one describes the {what} as imaged.\n"
        + answer_line(position, choices)
    )
    return {
        "question": f"In this image of {sample} stained with {stain}, what is seen in the {what}?",
        "choices": choices,
        "correct_index": position,
        "correct_answer": finding,
        "cot": cot,
    }


def audit_rows(n: int, planted: set[int]) -> list[dict[str, Any]]:
    """n rows; row i in `planted` carries topic (i + n // 2)'s question and answer."""
    rows = []
    for i in range(n):
        source = (i + n // 2) % n if i in planted else i
        rows.append(
            {
                "image_name": f"fig_{i:03d}",
                "image": {"bytes": encode(textured_image(7000 + i)), "path": f"fig_{i:03d}.png"},
                **item(source, n),
                "task_str": TASKS[i % 3],
                "image_caption": caption_for(TOPICS[i]),
                "images_source": f"PMC{500 + i}",
            }
        )
    return rows


def write_audit_file(path: Path, n: int = 12, planted: set[int] | None = None) -> Path:
    rows = audit_rows(n, planted or set())
    columns = {k: [r[k] for r in rows] for k in MICROVQA_PP_TYPES}
    return write_parquet(path, columns, MICROVQA_PP_TYPES)
