"""Stage 1's calls: the prompt and JSON schema of one attempt, its checks, and the row it
becomes (a QA, or a quarantine row with every failed check). Pure: no store, no model."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from microvqa_tui.common.prompts import PromptTemplate, task_parts
from microvqa_tui.common.quarantine import Quarantined
from microvqa_tui.config.stage1 import Stage1Settings
from microvqa_tui.models.client import TIMEOUT, UNPARSABLE, JsonResult, LLMRequest, Sampling
from microvqa_tui.pipeline.stage1 import checks
from microvqa_tui.vocabulary import ITEM_CAPTION
from microvqa_tui.vocabulary import ORIGIN_STAGE1 as ORIGIN
from microvqa_tui.vocabulary import STAGE_STAGE1 as STAGE
from store.ids import text_id

PAYLOAD_CHARS = 4000


@dataclass
class Caption:
    caption_id: str
    figure_id: str
    text: str


@dataclass
class Attempt:
    caption: Caption
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
    """The quarantine `source` of one attempt, for people and the row's id:
    `<task_type>@<prompt_version>#<k>` (code reads the typed fields instead)."""
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


def check_limits(cfg: Stage1Settings) -> checks.CheckLimits:
    spans = cfg.evidence == "span"
    return checks.CheckLimits(
        min_evidence_chars=cfg.min_evidence_chars,
        min_question_words=cfg.min_question_words,
        max_copy_overlap=cfg.max_copy_overlap,
        max_copied_run=cfg.max_copied_run,
        min_answer_chars=cfg.min_answer_chars,
        duplicate_jaccard=cfg.duplicate_jaccard,
        max_field_chars=cfg.max_field_chars,
        bounded_fields=("question", "answer", "evidence") if spans else ("question", "answer"),
    )


@dataclass
class Outcome:
    generation: JsonResult
    fields: dict[str, str]
    failure: checks.Check | None
    all_failures: list[checks.Check]


def request_for(
    template: PromptTemplate,
    attempt: Attempt,
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


# the client's error -> the quarantine reason (any other error: GENERATION_FAILED)
_ERROR_REASONS = {UNPARSABLE: checks.UNPARSABLE, TIMEOUT: checks.MODEL_TIMEOUT}


def check_attempt(
    gen: JsonResult,
    template: PromptTemplate,
    attempt: Attempt,
    cfg: Stage1Settings,
    limits: checks.CheckLimits,
    seen: dict[str, list[str]],
) -> Outcome:
    if gen.error:
        reason = _ERROR_REASONS.get(gen.error, checks.GENERATION_FAILED)
        failure = checks.Check(False, reason, gen.message)
        return Outcome(gen, {}, failure, [failure])
    ok, fields = checks.check_schema(gen.value, attempt.task_type)
    if not ok.keep:
        return Outcome(gen, fields, ok, [ok])
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
    return Outcome(gen, fields, failed[0] if failed else None, failed)


def qa_row(
    attempt: Attempt, fields: dict[str, str], model: str, prompt_version: str
) -> dict[str, Any]:
    """A QA row less `created_at` and `run_id` (stamped by `write` on the driver)."""
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
    }


def quarantine_row(
    attempt: Attempt, outcome: Outcome, prompt_version: str, model: str
) -> dict[str, Any]:
    source = attempt_source(attempt.task_type, prompt_version, attempt.k)
    failure = outcome.failure
    assert failure is not None
    detail = "; ".join(f"{c.reason}: {c.detail}" for c in outcome.all_failures)
    payload = outcome.generation.raw
    if not payload and outcome.generation.value is not None:
        payload = json.dumps(outcome.generation.value, ensure_ascii=False, default=str)
    return Quarantined(
        stage=STAGE,
        reason=failure.reason,
        item_kind=ITEM_CAPTION,
        item_id=attempt.caption.caption_id,
        source=source,
        ref=attempt.caption.caption_id,
        detail=f"[{model}] {detail}"[:2000],
        payload=payload[:PAYLOAD_CHARS],
        task_type=attempt.task_type,
        attempt=attempt.k,
        version=prompt_version,
    ).row()
