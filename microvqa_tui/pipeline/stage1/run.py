"""Stage 1: the local LLM writes QA pairs of the three MicroVQA task types from each caption.

One call per (caption, task type, k < qas_per_task), each with a JSON schema whose
`task_type` is an enum of that one type (more reliable for a small model than one call for
three). The output passes the checks of `checks.py` or goes to `quarantine` with its reason;
so does a call the model fails (its error is the reason), and the run goes on. A batch's
calls go to the LLM client together (`in_flight` at once: one in-process, more for a
server) and are checked in order, so the result does not depend on which finished first.

Resumable: an attempt is identified by (caption, task type, prompt_version); a caption's
attempts already answered by a QA or a quarantine row of the current prompt_version are not
made again. Batches of captions are written whole (quarantine rows first, then QAs), so a
crash or a cancel loses at most the batch in flight.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.common.prompts import PromptTemplate, load_template, task_parts
from microvqa_tui.common.runs import record_run
from microvqa_tui.config.stage1 import Stage1Settings, stage1_settings
from microvqa_tui.models.client import UNPARSABLE, JsonResult, LLMClient, LLMRequest, Sampling
from microvqa_tui.pipeline.stage1 import checks
from microvqa_tui.pipeline.step import batched, to_jsonable
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import ORIGIN_STAGE1 as ORIGIN
from microvqa_tui.vocabulary import STAGE_STAGE1 as STAGE
from microvqa_tui.vocabulary import TASK_TYPES
from store import Store
from store.ids import text_id
from store.queries import in_list, quote
from store.schema import utcnow

PAYLOAD_CHARS = 4000


@dataclass
class Stage1Report:
    run_id: str = ""
    model: str = ""
    prompt_version: str = ""
    captions_total: int = 0
    captions_done_before: int = 0  # every attempt already made for this prompt_version
    captions_processed: int = 0
    calls: int = 0
    qas_written: int = 0
    qas_by_task: dict[str, int] = field(default_factory=dict)
    calls_by_task: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    survival: float = 0.0  # QAs kept / calls made
    tokens: int = 0
    tokens_per_s: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass
class _Caption:
    caption_id: str
    figure_id: str
    text: str


@dataclass
class _Attempt:
    caption: _Caption
    task_type: str
    k: int


def qa_schema(task_type: str, cfg: Stage1Settings, sentences: list[str] | None = None) -> dict:
    """JSON schema of one QA; evidence first so the question and answer rest on it."""
    text = {"type": "string", "minLength": 1, "maxLength": cfg.max_field_chars}
    evidence: dict[str, Any] = dict(text)
    if sentences:
        evidence = {"type": "string", "enum": sentences}
    return {
        "type": "object",
        "properties": {
            "task_type": {"type": "string", "enum": [task_type]},
            "evidence": evidence,
            "question": dict(text),
            "answer": dict(text),
        },
        "required": ["task_type", "evidence", "question", "answer"],
        "additionalProperties": False,
    }


def attempt_source(task_type: str, prompt_version: str, k: int) -> str:
    """The quarantine `source` of one attempt: `<task_type>@<prompt_version>#<k>`."""
    return f"{task_type}@{prompt_version}#{k}"


def call_seed(base: int, caption_id: str, task_type: str, k: int) -> int:
    """A per-attempt seed: the same attempt samples the same way in any batch order."""
    return (base + zlib.crc32(f"{caption_id}|{task_type}|{k}".encode())) % (2**31 - 1)


def build_messages(
    template: PromptTemplate, caption: str, task_type: str, cfg: Stage1Settings
) -> tuple[list[dict[str, str]], list[str]]:
    text = caption.strip()
    if len(text) > cfg.max_caption_chars:
        text = text[: cfg.max_caption_chars].rsplit(" ", 1)[0] + " …"
    sentences = checks.split_sentences(text)
    return template.messages(_values(template, text, task_type, sentences)), sentences


def prompt_without_caption(template: PromptTemplate, task_type: str) -> str:
    """The prompt's own wording for one task type (for the copies_prompt check)."""
    messages = template.messages(_values(template, "", task_type, []))
    return "\n".join(m["content"] for m in messages)


def _values(
    template: PromptTemplate, text: str, task_type: str, sentences: list[str]
) -> dict[str, str]:
    task = task_parts(template, task_type)
    return {
        "caption": text,
        "task_type": task_type,
        "task_title": task.title,
        "task_instructions": task.instructions,
        "task_example": task.example,
        "sentences": "\n".join(f"{i + 1}. {s}" for i, s in enumerate(sentences)),
    }


# ----------------------------------------------------------------------------- store reads
def _captions(store: Store) -> list[_Caption]:
    rows = store.rows("captions", columns=["caption_id", "figure_id", "text"])
    rows.sort(key=lambda r: (r["figure_id"], r["caption_id"]))
    return [_Caption(r["caption_id"], r["figure_id"], r["text"] or "") for r in rows]


def _attempts_made(store: Store, prompt_version: str) -> Counter[tuple[str, str]]:
    """(caption_id, task_type) -> attempts already answered (QA or quarantine) for this version."""
    made: Counter[tuple[str, str]] = Counter()
    where = f"origin = {quote(ORIGIN)} AND prompt_version = {quote(prompt_version)}"
    for row in store.rows("qas", where, ["caption_id", "task_type"]):
        made[(row["caption_id"], row["task_type"])] += 1
    where = f"stage = {quote(STAGE)} AND source LIKE {quote('%@' + prompt_version + '#%')}"
    for row in store.rows("quarantine", where, ["ref", "source"]):
        task_type = row["source"].split("@", 1)[0]
        made[(row["ref"], task_type)] += 1
    return made


def _figure_questions(store: Store, figure_ids: list[str]) -> dict[str, list[str]]:
    """Question keys already in the store per figure (for the duplicate check)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for chunk in batched(sorted(set(figure_ids)), 200):
        where = in_list("figure_id", chunk)
        total = store.count("qas", where)
        if total:
            for row in store.page(
                "qas", where=where, columns=["figure_id", "question"], limit=total
            ):
                seen[row["figure_id"]].append(checks.question_key(row["question"]))
    return seen


# ----------------------------------------------------------------------------- the step
def load_llm(settings: Any) -> LLMClient:
    from microvqa_tui.models.registry import get_llm

    return get_llm(settings)


def run_stage1(
    store: Store,
    settings: Any,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    llm: LLMClient | None = None,
) -> Stage1Report:
    """Generate QAs for every caption lacking them for the current prompt_version."""
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    cfg = stage1_settings(settings)
    template = load_template(cfg.prompt_file, cfg.prompt_dir)
    for task_type in cfg.task_types:
        task_parts(template, task_type)  # fail early on a template missing a task section
    llm = llm if llm is not None else load_llm(settings)
    model = llm.model_id
    prompt_version = template.version(model)
    limits = checks.CheckLimits(
        min_evidence_chars=cfg.min_evidence_chars,
        min_question_words=cfg.min_question_words,
        max_copy_overlap=cfg.max_copy_overlap,
        max_copied_run=cfg.max_copied_run,
        min_answer_chars=cfg.min_answer_chars,
        duplicate_jaccard=cfg.duplicate_jaccard,
        max_field_chars=cfg.max_field_chars,
        bounded_fields=("question", "answer", "evidence")
        if cfg.evidence == "span"
        else ("question", "answer"),
    )
    seed_base = int(getattr(getattr(settings, "models", None), "seed", 0) or 0)
    report = Stage1Report(model=model, prompt_version=prompt_version)
    config = {**cfg.model_dump(mode="json"), "prompt_version": prompt_version}
    config["prompt_file"] = str(template.path)

    with record_run(store, STAGE, config=config) as run:
        report.run_id = run.run_id
        run.models = {"llm": model, "prompt_version": prompt_version}
        clock = time.perf_counter()
        captions = _captions(store)
        made = _attempts_made(store, prompt_version)
        todo: list[list[_Attempt]] = []
        for caption in captions:
            attempts = [
                _Attempt(caption, task_type, k)
                for task_type in cfg.task_types
                for k in range(made[(caption.caption_id, task_type)], cfg.qas_per_task)
            ]
            if attempts:
                todo.append(attempts)
        report.captions_total = len(captions)
        report.captions_done_before = len(captions) - len(todo)
        if cfg.limit:
            todo = todo[: cfg.limit]
        progress.start(f"stage 1 · {model}", len(todo))
        if not todo:
            progress.log("stage 1: every caption already has its QAs for this prompt version")
        gen_seconds = 0.0
        failures: Counter[str] = Counter()
        by_task: Counter[str] = Counter()
        calls_by_task: Counter[str] = Counter()

        for batch in batched(todo, cfg.batch_size):
            cancel.check()
            seen = _figure_questions(store, [a[0].caption.figure_id for a in batch])
            qa_rows: list[dict[str, Any]] = []
            quarantine_rows: list[dict[str, Any]] = []
            flat = [attempt for attempts in batch for attempt in attempts]
            requests = [_request(template, a, cfg, seed_base) for a in flat]
            results = llm.ask_all(requests, cancel=cancel)
            for attempt, gen in zip(flat, results, strict=True):
                outcome = _check(gen, template, attempt, cfg, limits, seen)
                report.calls += 1
                calls_by_task[attempt.task_type] += 1
                report.tokens += gen.completion_tokens
                gen_seconds += gen.seconds
                now = utcnow()
                if outcome.failure is not None:
                    failures[outcome.failure.reason] += 1
                    quarantine_rows.append(
                        _quarantine_row(attempt, outcome, prompt_version, model, run.run_id, now)
                    )
                    continue
                seen[attempt.caption.figure_id].append(
                    checks.question_key(outcome.fields["question"])
                )
                by_task[attempt.task_type] += 1
                qa_rows.append(
                    _qa_row(attempt, outcome.fields, model, prompt_version, run.run_id, now)
                )
            if quarantine_rows:
                report.quarantined += store.insert_new("quarantine", quarantine_rows)
            if qa_rows:
                report.qas_written += store.insert_new("qas", qa_rows)
            report.captions_processed += len(batch)
            progress.advance(len(batch))

        report.qas_by_task = {t: by_task[t] for t in TASK_TYPES if t in cfg.task_types}
        report.calls_by_task = {t: calls_by_task[t] for t in TASK_TYPES if t in cfg.task_types}
        report.failures_by_reason = dict(failures.most_common())
        report.survival = sum(by_task.values()) / report.calls if report.calls else 0.0
        report.tokens_per_s = report.tokens / gen_seconds if gen_seconds else 0.0
        report.seconds = time.perf_counter() - clock
        run.counts = {
            "captions_total": report.captions_total,
            "captions_processed": report.captions_processed,
            "calls": report.calls,
            "qas_written": report.qas_written,
            "quarantined": report.quarantined,
            "qas_by_task": report.qas_by_task,
            "failures_by_reason": report.failures_by_reason,
            "tokens": report.tokens,
        }
        run.timings = {
            "generation_s": round(gen_seconds, 3),
            "tokens_per_s": round(report.tokens_per_s, 2),
        }
        progress.log(
            f"stage 1: {sum(by_task.values())} QAs kept of {report.calls} calls "
            f"({report.survival:.0%}); {report.quarantined} quarantined"
        )
    return report


@dataclass
class _Outcome:
    generation: JsonResult
    fields: dict[str, str]
    failure: checks.Check | None
    all_failures: list[checks.Check]


def _request(
    template: PromptTemplate,
    attempt: _Attempt,
    cfg: Stage1Settings,
    seed_base: int,
) -> LLMRequest:
    messages, sentences = build_messages(template, attempt.caption.text, attempt.task_type, cfg)
    schema = qa_schema(attempt.task_type, cfg, sentences if cfg.evidence == "sentence" else None)
    seed = call_seed(seed_base, attempt.caption.caption_id, attempt.task_type, attempt.k)
    sampling = Sampling(
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        seed=seed,
        repeat_penalty=cfg.repeat_penalty,
    )
    return LLMRequest(messages, schema, sampling=sampling, purpose="qa")


def _check(
    gen: JsonResult,
    template: PromptTemplate,
    attempt: _Attempt,
    cfg: Stage1Settings,
    limits: checks.CheckLimits,
    seen: dict[str, list[str]],
) -> _Outcome:
    if gen.error:
        reason = checks.UNPARSABLE if gen.error == UNPARSABLE else checks.GENERATION_FAILED
        failure = checks.Check(False, reason, gen.message)
        return _Outcome(gen, {}, failure, [failure])
    ok, fields = checks.check_schema(gen.value, attempt.task_type)
    if not ok.keep:
        return _Outcome(gen, fields, ok, [ok])
    # a rambling answer cut by maxLength keeps its complete sentences (if it has one)
    trimmed = checks.trim_truncated(fields["answer"], cfg.max_field_chars)
    if trimmed:
        fields["answer"] = trimmed
    failed = checks.run_checks(
        fields,
        attempt.caption.text,
        seen[attempt.caption.figure_id],
        limits,
        prompt_without_caption(template, attempt.task_type),
    )
    return _Outcome(gen, fields, failed[0] if failed else None, failed)


def _qa_row(
    attempt: _Attempt, fields: dict[str, str], model: str, prompt_version: str, run_id: str, now
) -> dict[str, Any]:
    return {
        "qa_id": text_id(attempt.caption.figure_id, fields["question"], fields["answer"]),
        "figure_id": attempt.caption.figure_id,
        "caption_id": attempt.caption.caption_id,
        "question": fields["question"],
        "answer": fields["answer"],
        "task_type": attempt.task_type,
        "evidence": fields["evidence"],
        "origin": ORIGIN,
        "model": model,
        "prompt_version": prompt_version,
        "created_at": now,
        "run_id": run_id,
    }


def _quarantine_row(
    attempt: _Attempt, outcome: _Outcome, prompt_version: str, model: str, run_id: str, now
) -> dict[str, Any]:
    source = attempt_source(attempt.task_type, prompt_version, attempt.k)
    failure = outcome.failure
    assert failure is not None
    detail = "; ".join(f"{c.reason}: {c.detail}" for c in outcome.all_failures)
    payload = outcome.generation.raw
    if not payload and outcome.generation.value is not None:
        payload = json.dumps(outcome.generation.value, ensure_ascii=False, default=str)
    return {
        "quarantine_id": text_id(STAGE, source, attempt.caption.caption_id, failure.reason),
        "stage": STAGE,
        "source": source,
        "ref": attempt.caption.caption_id,
        "reason": failure.reason,
        "detail": f"[{model}] {detail}"[:2000],
        "payload": payload[:PAYLOAD_CHARS],
        "created_at": now,
        "run_id": run_id,
    }
