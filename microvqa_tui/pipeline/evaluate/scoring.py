"""Scoring answers: accuracy overall and by task, Bloom level and family, with and without
the image, against the random-guess baseline."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.evaluate.answers import Answerer, build_prompt, parse_answer
from microvqa_tui.pipeline.evaluate.items import EvalItem, load_items
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

RUN_IMAGE = "with_image"
RUN_NO_IMAGE = "no_image"


# ============================================================================ scoring
@dataclass
class Prediction:
    raw: str
    parsed: int | None
    correct: bool
    seconds: float = 0.0


def _accuracy_table(
    items: Sequence[EvalItem], preds: dict[str, Prediction], key
) -> dict[str, dict[str, Any]]:
    buckets: dict[str, list[EvalItem]] = defaultdict(list)
    for item in items:
        buckets[key(item)].append(item)
    out = {}
    for name in sorted(buckets, key=str):
        group = buckets[name]
        correct = sum(preds[i.item_id].correct for i in group if i.item_id in preds)
        out[name] = {
            "n": len(group),
            "accuracy": round(correct / len(group), 4) if group else 0.0,
            "random_baseline": round(sum(1 / len(i.choices) for i in group) / len(group), 4),
        }
    return out


def run_summary(items: Sequence[EvalItem], preds: dict[str, Prediction]) -> dict[str, Any]:
    n = len(items)
    correct = sum(p.correct for p in preds.values())
    return {
        "n": n,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "correct": correct,
        "unparsed": sum(p.parsed is None for p in preds.values()),
        "by_task": _accuracy_table(items, preds, lambda i: i.task or "unknown"),
        "by_bloom": _accuracy_table(
            items, preds, lambda i: str(i.bloom) if i.bloom is not None else "unknown"
        ),
        "by_family": _accuracy_table(items, preds, lambda i: i.family or "unknown"),
        "seconds": round(sum(p.seconds for p in preds.values()), 3),
    }


def random_baseline(items: Iterable[EvalItem]) -> float:
    items = list(items)
    return round(sum(1 / len(i.choices) for i in items) / len(items), 4) if items else 0.0


def evaluate_items(
    items: Sequence[EvalItem],
    answerer: Answerer,
    *,
    with_image: bool = True,
    image_free: bool = True,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Ask `answerer` every item (with its images, and/or without), score, summarise."""
    progress = progress or NullProgress()
    runs: list[str] = []
    if with_image and any(item.images for item in items):
        runs.append(RUN_IMAGE)
    if image_free or not runs:
        runs.append(RUN_NO_IMAGE)
    predictions: dict[str, dict[str, Prediction]] = {run: {} for run in runs}
    for run in runs:
        show = run == RUN_IMAGE
        progress.start(f"answering ({run.replace('_', ' ')})", len(items))
        for item in items:
            if cancel is not None:
                cancel.check()
            prompt = build_prompt(item, show)
            started = time.perf_counter()
            raw = answerer.answer(prompt, item.images if show else [])
            parsed = parse_answer(raw, item.choices)
            predictions[run][item.item_id] = Prediction(
                raw, parsed, parsed == item.correct_index, round(time.perf_counter() - started, 4)
            )
            progress.advance(1)
    summaries = {run: run_summary(items, predictions[run]) for run in runs}
    result: dict[str, Any] = {
        "model": getattr(answerer, "name", type(answerer).__name__),
        "n": len(items),
        "random_baseline": random_baseline(items),
        "runs": summaries,
        "accuracy": summaries[runs[0]]["accuracy"],
        "main_run": runs[0],
    }
    if RUN_NO_IMAGE in summaries:
        result["language_shortcut_rate"] = summaries[RUN_NO_IMAGE]["accuracy"]
        result["shortcut_above_chance"] = round(
            summaries[RUN_NO_IMAGE]["accuracy"] - result["random_baseline"], 4
        )
    if RUN_IMAGE in summaries and RUN_NO_IMAGE in summaries:
        both = [i.item_id for i in items if predictions[RUN_IMAGE][i.item_id].correct]
        result["image_gain"] = round(
            summaries[RUN_IMAGE]["accuracy"] - summaries[RUN_NO_IMAGE]["accuracy"], 4
        )
        result["correct_without_image_share"] = (
            round(sum(predictions[RUN_NO_IMAGE][i].correct for i in both) / len(both), 4)
            if both
            else 0.0
        )
    result["items"] = [
        {
            "id": item.item_id,
            "task": item.task,
            "bloom": item.bloom,
            "family": item.family,
            "n_images": len(item.images),
            "correct_index": item.correct_index,
            **{run: asdict(predictions[run][item.item_id]) for run in runs},
        }
        for item in items
    ]
    return result


def evaluate_source(
    source: Path | str,
    answerer: Answerer,
    *,
    no_image: bool = False,
    limit: int | None = None,
    split: str | None = None,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Load `source`, evaluate, and return the results (JSON-ready)."""
    items, info = load_items(source, split=split, limit=limit, with_images=not no_image)
    if not items:
        raise PipelineError(
            f"no usable MCQ in {source}",
            hint="check the file's layout (question, choices, correct_index)",
        )
    result = evaluate_items(
        items, answerer, with_image=not no_image, image_free=True, progress=progress, cancel=cancel
    )
    result["source"] = asdict(info)
    result["multi_image_items"] = sum(len(i.images) > 1 for i in items)
    return result
