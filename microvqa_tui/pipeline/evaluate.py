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

import json
import re
import string
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from microvqa_tui.errors import IngestError, PipelineError
from microvqa_tui.models.client import LLMClient, LLMRequest, Sampling
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

LETTERS = string.ascii_uppercase
RUN_IMAGE = "with_image"
RUN_NO_IMAGE = "no_image"


# ============================================================================ items
@dataclass
class EvalItem:
    item_id: str
    question: str
    choices: list[str]
    correct_index: int  # 0-based
    images: list[bytes] = field(default_factory=list)
    task: str = ""
    bloom: int | None = None
    family: str = ""
    split: str = ""


@dataclass
class SourceInfo:
    source: str
    kind: str  # export | parquet | jsonl | store
    files: list[str] = field(default_factory=list)
    index_base: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def _choices_and_base(rows: list[tuple[int, Any, Any, Any]], source: str) -> int:
    from microvqa_tui.ingest.mcq import decide_index_base

    return decide_index_base(rows, source).base


def _clean_choices(raw: Any) -> list[str] | None:
    from microvqa_tui.ingest.mcq import strip_labels

    if isinstance(raw, str) or not isinstance(raw, list | tuple) or len(raw) < 2:
        return None
    if not all(isinstance(c, str) and c.strip() for c in raw):
        return None
    return strip_labels(list(raw))[0]


def _image_bytes(value: Any, base_dir: Path) -> bytes | None:
    """Bytes of an image given as HF struct, raw bytes or a path relative to the source."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            return None
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
            if not path.is_relative_to(base_dir.resolve()):
                return None  # a relative path must stay inside the source's folder
        try:
            return path.read_bytes()
        except OSError:
            return None
    return None


def _images_of(row: dict[str, Any], base_dir: Path) -> list[bytes]:
    found: list[Any] = []
    if row.get("images_list") is not None:
        found.extend(row["images_list"])
    elif row.get("images") is not None and isinstance(row["images"], list):
        found.extend(row["images"])
    else:
        if row.get("image") is not None:
            found.append(row["image"])
        found.extend(row.get("extra_images") or [])
    out = []
    for value in found:
        data = _image_bytes(value, base_dir)
        if data:
            out.append(data)
    return out


def _bloom(row: dict[str, Any]) -> int | None:
    for key in ("bloom_level", "blooms_level", "bloom", "blooms"):
        value = row.get(key)
        if value is None or value == "":
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            match = re.search(r"\d", str(value))
            if match:
                return int(match.group())
    return None


def _task(row: dict[str, Any]) -> str:
    for key in ("task_str", "task_type", "task"):
        value = row.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def _row_item(
    row: dict[str, Any], number: int, base: int, base_dir: Path, with_images: bool
) -> EvalItem | None:
    question = row.get("question") or row.get("key_question_text")
    choices = _clean_choices(
        row.get("choices") if row.get("choices") is not None else row.get("options")
    )
    index = row.get("correct_index")
    if not isinstance(question, str) or not question.strip() or choices is None or index is None:
        return None
    try:
        position = int(index) - base
    except (TypeError, ValueError):
        return None
    if not 0 <= position < len(choices):
        return None
    item_id = str(
        row.get("mcq_id")
        or row.get("key_question")
        or row.get("id")
        or row.get("question_id")
        or number
    )
    return EvalItem(
        item_id=item_id,
        question=question.strip(),
        choices=choices,
        correct_index=position,
        images=_images_of(row, base_dir) if with_images else [],
        task=_task(row),
        bloom=_bloom(row),
        family=str(row.get("family") or ""),
        split=str(row.get("split") or ""),
    )


def _parquet_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(str(path))
    names = set(handle.schema_arrow.names)
    cols = [c for c in columns if c in names] if columns else None
    for batch in handle.iter_batches(batch_size=64, columns=cols):
        yield from batch.to_pylist()


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(stripped)
        yield from (row for row in data if isinstance(row, dict))
        return
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def _file_rows(path: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    if path.suffix == ".parquet":
        yield from _parquet_rows(path, columns)
    else:
        yield from _jsonl_rows(path)


def _source_files(source: Path) -> tuple[str, list[Path]]:
    if source.is_file():
        if source.suffix == ".parquet":
            return "parquet", [source]
        if source.suffix in (".jsonl", ".json"):
            return "jsonl", [source]
        raise PipelineError(f"cannot evaluate {source}: not a .parquet, .jsonl or .json file")
    if not source.is_dir():
        raise PipelineError(f"evaluation source {source} not found")
    kind = "export" if (source / "export.json").is_file() else ""
    parquet = sorted(p for p in source.rglob("*.parquet") if not p.name.startswith("."))
    if parquet:
        return kind or "parquet", parquet
    jsonl = sorted(p for p in source.glob("*.jsonl") if not p.name.startswith("."))
    if jsonl:
        return kind or "jsonl", jsonl
    raise PipelineError(
        f"no Parquet or JSONL MCQ files in {source}",
        hint="evaluate a parquet or jsonl export (LLaVA conversations carry no choices list)",
    )


def load_items(
    source: Path | str,
    *,
    split: str | None = None,
    limit: int | None = None,
    with_images: bool = True,
) -> tuple[list[EvalItem], SourceInfo]:
    """Read an MCQ set. Whether `correct_index` is 0- or 1-based is decided per file (the
    ingest rule, checked against `correct_answer`); a file that fits neither is refused."""
    source = Path(source)
    if source.is_dir() and (source / "mcqs.lance").exists():
        return _store_items(source, limit=limit, with_images=with_images)
    kind, files = _source_files(source)
    info = SourceInfo(str(source), kind, [str(f) for f in files])
    items: list[EvalItem] = []
    for path in files:
        if split and kind == "export" and not path.name.startswith(split):
            continue
        checks = [
            (
                n,
                r.get("choices") if r.get("choices") is not None else r.get("options"),
                r.get("correct_index"),
                r.get("correct_answer"),
            )
            for n, r in enumerate(
                _file_rows(path, ["choices", "options", "correct_index", "correct_answer"]), 1
            )
        ]
        try:
            base = _choices_and_base(checks, str(path))
        except IngestError as exc:
            raise PipelineError(str(exc.message), hint=exc.hint) from None
        info.index_base = base
        for number, row in enumerate(_file_rows(path), 1):
            if split and row.get("split") and row["split"] != split:
                continue
            item = _row_item(row, number, base, path.parent, with_images)
            if item is None:
                info.skipped += 1
                continue
            items.append(item)
            if limit and len(items) >= limit:
                return items, info
    return items, info


def _store_items(
    path: Path, *, limit: int | None, with_images: bool
) -> tuple[list[EvalItem], SourceInfo]:
    from microvqa_tui.pipeline.export.select import select_mcqs
    from store import open_store

    store = open_store(path, create=False)
    selection = select_mcqs(store)
    rows = selection.mcqs[:limit] if limit else selection.mcqs
    images: dict[str, bytes] = {}
    if with_images:
        fids = sorted({f for r in rows for f in r["image_ids"]})
        for fig in store.get_many(
            "figures", fids, columns=["figure_id", "image_bytes", "image_path"]
        ):
            data = fig.get("image_bytes") or _image_bytes(fig.get("image_path"), Path("/"))
            if data:
                images[fig["figure_id"]] = data
    items = [
        EvalItem(
            r["mcq_id"],
            r["question"],
            list(r["choices"]),
            r["correct_index"],
            [images[f] for f in r["image_ids"] if f in images],
            r.get("task_str") or "",
            r.get("bloom_level"),
            r.get("family") or "",
        )
        for r in rows
    ]
    return items, SourceInfo(str(path), "store", [], 0, 0, [f"selection: {selection.rule}"])


# ============================================================================ prompting
SYSTEM_PROMPT = "You are an expert in biology and microscopy. You answer multiple-choice questions."


def build_prompt(item: EvalItem, with_image: bool) -> str:
    n = len(item.images)
    if with_image and n:
        intro = (
            "Look at the microscopy image" + ("s" if n > 1 else "") + " and answer the question."
        )
    else:
        intro = "Answer the question about a microscopy image (the image is not shown)."
    options = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(item.choices))
    return (
        f"{intro}\n\nQuestion: {item.question}\n\nOptions:\n{options}\n\n"
        f"Reply with the letter ({', '.join(LETTERS[: len(item.choices)])}) of the correct option."
    )


# ============================================================================ parsing
_TOKEN = r"[\(\[\*\s]*([A-Z]|\d{1,2})(?![\w-])[\)\]\*]?"
# Explicit answers first ("the answer is C", "Answer: 2"), then "option C" / "choice C";
# within each, the last one wins (a reasoning ends with its conclusion).
_MARKERS = [
    re.compile(
        r"(?:final\s+answer|correct\s+(?:answer|option|choice)|answer)\s*(?:is|:|=|-)?\s*(?:option\s+|choice\s+)?"
        + _TOKEN,
        re.I,
    ),
    re.compile(r"(?:option|choice)\s*(?:is|:)?\s*" + _TOKEN, re.I),
]
_LEADING = re.compile(r"^\s*[\(\[\*]*([A-Z])(?:[\)\]\.:\*]|\s*$|\s+[-–—]\s)")
_PAREN = re.compile(r"\(([A-Z])\)")
_BARE = re.compile(r"^\s*[\(\[\*]*([A-Z]|\d{1,2})[\)\]\.\*]*\s*$", re.I)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _token_to_index(token: str, n: int) -> int | None:
    if token.isdigit():
        value = int(token)
        return value - 1 if 1 <= value <= n else None
    index = LETTERS.find(token.upper())
    return index if 0 <= index < n else None


def parse_answer(text: str, choices: Sequence[str]) -> int | None:
    """The 0-based option a reply picks, or None when it cannot be told.

    Understood: "(B)", "B.", "B)", "B", "**B**", "Answer: B", "Answer: 2" (numbers are
    1-based), "the answer is C", "option C", "The correct answer is (C) ...", and the option's
    own text ("...is mitochondria"). Markers win over everything else (the last one, so a
    reasoning that ends with its answer is read correctly); a lone "A" starting a sentence
    ("A cell ...") is not read as option A.
    """
    if not text:
        return None
    n = len(choices)
    reply = text.strip()
    bare = _BARE.match(reply)
    if bare:
        return _token_to_index(bare.group(1), n)
    for pattern in _MARKERS:
        for match in reversed(list(pattern.finditer(reply))):
            token = match.group(1)
            after = reply[match.end(1) : match.end(1) + 1]
            # "the answer is a cell": a lower-case letter counts only when set off
            if (
                token.isalpha()
                and token.islower()
                and after not in ("", ")", "]", ".", ":", ",", "*")
            ):
                continue
            index = _token_to_index(token, n)
            if index is not None:
                return index
    leading = _LEADING.match(reply)
    if leading:
        index = _token_to_index(leading.group(1), n)
        if index is not None:
            return index
    parens = {m.group(1) for m in _PAREN.finditer(reply)}
    if len(parens) == 1:
        index = _token_to_index(parens.pop(), n)
        if index is not None:
            return index
    # The option's text itself: exact, else the only option contained in the reply.
    said = _norm(reply)
    normed = [_norm(c) for c in choices]
    for i, c in enumerate(normed):
        if c and said == c:
            return i
    contained = [i for i, c in enumerate(normed) if c and re.search(rf"\b{re.escape(c)}\b", said)]
    if len(contained) > 1:  # drop options contained in a longer contained one
        contained = [
            i for i in contained if not any(j != i and normed[i] in normed[j] for j in contained)
        ]
    if len(contained) == 1:
        return contained[0]
    return None


# ============================================================================ answerers
class Answerer(Protocol):
    name: str

    def answer(self, prompt: str, images: list[bytes]) -> str:
        """The model's reply to `prompt`, shown `images` (empty: no image)."""


class ModelAnswerer:
    """Answers through an LLM client (`models.registry` get_llm / get_vlm): free text,
    greedy (temperature 0) for reproducibility; images go with the prompt for a vision
    model. A failed call answers "" (counted as unparsed), so one item cannot stop a run."""

    def __init__(
        self,
        model: LLMClient,
        name: str | None = None,
        *,
        vision: bool = False,
        max_tokens: int = 96,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.vision = vision
        self.max_tokens = max_tokens
        self.seed = seed
        self.name = name or model.model_id

    def answer(self, prompt: str, images: list[bytes]) -> str:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ]
        request = LLMRequest(
            messages,
            None,
            images=tuple(images) if self.vision else (),
            sampling=Sampling(temperature=0.0, max_tokens=self.max_tokens, seed=self.seed),
            purpose="eval",
        )
        return self.model.ask(request).raw


def load_answerer(settings: Any, role: str = "llm") -> ModelAnswerer:
    """The configured text LLM (role llm) or vision LLM (role vlm) as an Answerer."""
    from microvqa_tui.models import registry

    return ModelAnswerer(
        registry.get(role, settings),
        vision=role == "vlm",
        seed=int(getattr(getattr(settings, "models", None), "seed", 0) or 0),
    )


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
