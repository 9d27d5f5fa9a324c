"""Evaluate a local model on a multiple-choice set, with and without the image.

Sources: an export of ours (folder with `export.json`: its Parquet or JSONL files), any
Parquet/JSONL file (or folder of them) in the MicroVQA++ layout (`image` struct, `choices`,
`correct_index`, ...) or the MicroVQA layout (`images_list`, `key_question`, ...), several
images per question included, or a store folder (its exportable MCQs).

Answers come from an `Answerer` (anything with `answer(prompt, images) -> str` and a
`name`): `ModelAnswerer` wraps the models of `models.registry` (text LLM or vision LLM);
tests plug in deterministic ones. Each reply is parsed by `parse_answer`.

Reported: accuracy overall and by task type, Bloom level and family; the same for an
image-free run (the model sees the question and options only), whose accuracy is the
language-shortcut rate; and the random-guess baseline (mean of 1/len(choices)).
"""

from __future__ import annotations

from microvqa_tui.pipeline.evaluate.answers import (
    LETTERS,
    SYSTEM_PROMPT,
    Answerer,
    ModelAnswerer,
    build_prompt,
    load_answerer,
    parse_answer,
)
from microvqa_tui.pipeline.evaluate.items import EvalItem, SourceInfo, load_items
from microvqa_tui.pipeline.evaluate.scoring import (
    RUN_IMAGE,
    RUN_NO_IMAGE,
    Prediction,
    evaluate_items,
    evaluate_source,
    random_baseline,
    run_summary,
)

__all__ = [
    "LETTERS",
    "RUN_IMAGE",
    "RUN_NO_IMAGE",
    "SYSTEM_PROMPT",
    "Answerer",
    "EvalItem",
    "ModelAnswerer",
    "Prediction",
    "SourceInfo",
    "build_prompt",
    "evaluate_items",
    "evaluate_source",
    "load_answerer",
    "load_items",
    "parse_answer",
    "random_baseline",
    "run_summary",
]
