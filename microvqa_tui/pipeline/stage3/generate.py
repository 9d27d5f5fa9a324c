"""Stage 3: kept QA pairs -> multiple-choice questions with a chain of thought.

For each QA the model writes a question, `n_choices` options, the correct one, a CoT and
the task type (JSON constrained to a schema). The item is checked (`validate.py`); a failed
attempt goes to quarantine with its reason and the raw output, and the QA is tried again,
at most `mcq.max_attempts` times. The correct option is then moved to a balanced position
(`positions.py`) and the CoT's final line rewritten to the new letter.

Resumable: a QA that already has an MCQ (or exhausted its attempts) for the current prompt
and model version is skipped. MCQ ids are content-addressed over qa_id + question + choices.
The step itself (`run_mcq`, a batch step that runs in process or on Ray) is in `step.py`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.common.funnel import FunnelRow
from microvqa_tui.common.quarantine import Quarantined
from microvqa_tui.config.mcq import MCQSettings
from microvqa_tui.models.client import TIMEOUT, LLMClient, LLMRequest, Meter
from microvqa_tui.models.client import UNPARSABLE as UNPARSABLE_REPLY
from microvqa_tui.pipeline.stage3 import prompts
from microvqa_tui.pipeline.stage3.cot import (
    final_answer_text,
    letter,
    match_option,
    with_final_answer,
)
from microvqa_tui.pipeline.stage3.positions import PositionBalancer, place
from microvqa_tui.pipeline.stage3.validate import Draft, Failure, check_generation
from microvqa_tui.vocabulary import (
    FAMILY_CAPTION,
    GENERATION_FAILED,
    ITEM_QA,
    MODEL_TIMEOUT,
    ORIGIN_IMPORTED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
    STATUS_PENDING,
    SUPERSEDED,
    UNPARSABLE,
)
from microvqa_tui.vocabulary import ORIGIN_STAGE3 as ORIGIN
from microvqa_tui.vocabulary import STAGE_MCQ as STAGE
from store import Store, text_id
from store.queries import in_list, quote
from store.schema import utcnow

PAYLOAD_CHARS = 4000
QA_COLUMNS = ["qa_id", "figure_id", "caption_id", "question", "answer", "task_type", "status"]


def item_seed(seed: int, key: str, attempt: int) -> int:
    """A sampling seed per (item, attempt): stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}:{key}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------------------- inputs
def select_qas(store: Store, cfg: MCQSettings) -> tuple[list[dict], str, str]:
    """(QAs to turn into MCQs, which statuses were used, a note for the report)."""
    judged = store.count("qas", f"status IN ('{STATUS_KEPT}', '{STATUS_HELD_OUT}')")
    note = ""
    if cfg.qa_source == "kept" or (cfg.qa_source == "auto" and judged):
        statuses = [STATUS_KEPT]
        if not judged:
            note = (
                "no QA has been judged by the graph step yet, so no QA is kept: run "
                "`microvqa run graph`, or set mcq.qa_source=auto to use pending QAs"
            )
    elif cfg.qa_source == "auto":
        statuses = [STATUS_PENDING]
        note = (
            "the graph step has not judged any QA yet: MCQs were made from pending (unfiltered) "
            "QAs; run the graph step and set mcq.qa_source=kept for a filtered dataset"
        )
    else:
        statuses = [STATUS_KEPT, STATUS_PENDING]
        note = "pending (unfiltered) QAs were used along with the kept ones (mcq.qa_source)"
    qas = store.rows("qas", in_list("status", statuses), QA_COLUMNS)
    # The QA of an imported MCQ is there to judge that MCQ: it needs no second one.
    behind = {
        r["qa_id"]
        for r in store.rows("mcqs", f"origin = {quote(ORIGIN_IMPORTED)} AND qa_id != ''", ["qa_id"])
    }
    qas = [q for q in qas if q["qa_id"] not in behind]
    qas.sort(key=lambda r: r["qa_id"])
    return qas, "+".join(statuses), note


def figure_images(store: Store, qas: list[dict]) -> dict[str, bytes]:
    """Image bytes per figure (stored bytes, else the original file) for a vision model."""
    from pathlib import Path

    out: dict[str, bytes] = {}
    ids = sorted({q["figure_id"] for q in qas})
    for row in store.get_many("figures", ids, columns=["figure_id", "image_bytes", "image_path"]):
        data = row["image_bytes"]
        if not data and row["image_path"] and Path(row["image_path"]).is_file():
            data = Path(row["image_path"]).read_bytes()
        if data:
            out[row["figure_id"]] = data
    return out


def mcq_version(template: prompts.PromptTemplate, model: str, cfg: MCQSettings) -> str:
    """Prompt text + model + what shapes the reply: a change makes every MCQ again."""
    return template.version(
        f"{model}|choices={cfg.n_choices}|pin={cfg.pin_answer}|schema={prompts.SCHEMA_VERSION}"
    )


# ---------------------------------------------------------------------------- one QA
@dataclass
class AttemptFailure:
    attempt: int
    reason: str
    detail: str
    raw: str


@dataclass
class Outcome:
    draft: Draft | None
    attempts: int
    failures: list[AttemptFailure]
    temperature: float = 0.0
    seed: int = 0
    meter: Meter = field(default_factory=Meter)  # this QA's calls (summed on the driver)
    timed_out: bool = False  # the last call timed out: the QA stays pending


class MCQGenerator:
    """Writes one MCQ for one QA with at most `max_attempts` model calls."""

    def __init__(self, llm: LLMClient, cfg: MCQSettings, template: prompts.PromptTemplate):
        self.llm, self.cfg, self.template = llm, cfg, template
        self.instructions = "\n".join(template.sections.values())

    def messages(self, qa: dict, caption: str) -> list[dict[str, str]]:
        caption = caption[: self.cfg.max_caption_chars]
        return self.template.messages(
            {
                "caption": caption,
                "question": qa["question"],
                "answer": qa["answer"],
                "task_type": qa["task_type"],
                "n_choices": self.cfg.n_choices,
                "n_distractors": self.cfg.n_choices - 1,
            }
        )

    def generate(self, qa: dict, caption: str, image: bytes | None = None) -> Outcome:
        cfg = self.cfg
        messages = self.messages(qa, caption)
        schema = prompts.generation_schema(
            cfg.n_choices, qa["answer"].strip() if cfg.pin_answer else None
        )
        failures: list[AttemptFailure] = []
        meter = Meter()
        for attempt in range(1, cfg.max_attempts + 1):
            temperature = cfg.temperature + cfg.retry_temperature_step * (attempt - 1)
            seed = item_seed(cfg.seed, qa["qa_id"], attempt)
            reply = self.llm.ask(
                LLMRequest.of(
                    messages,
                    schema,
                    purpose="mcq",
                    temperature=temperature,
                    seed=seed,
                    max_tokens=cfg.max_tokens,
                    images=[image] if image else None,
                    repeat_penalty=cfg.repeat_penalty,
                    retries=0,
                )
            )
            meter.add(reply, "mcq")
            if reply.error == TIMEOUT:  # the machine's load, not the QA: no more tries now
                failures.append(AttemptFailure(attempt, MODEL_TIMEOUT, reply.message, reply.raw))
                return Outcome(None, attempt, failures, meter=meter, timed_out=True)
            if not reply.ok:
                result: Draft | Failure = Failure(
                    UNPARSABLE if reply.error == UNPARSABLE_REPLY else GENERATION_FAILED,
                    reply.message or "the model's reply is not the JSON asked for",
                )
            else:
                result = check_generation(
                    reply.value,
                    n_choices=cfg.n_choices,
                    qa_answer=qa["answer"],
                    qa_task=qa["task_type"],
                    max_length_ratio=cfg.max_length_ratio,
                    instructions=self.instructions,
                )
            if isinstance(result, Draft):
                return Outcome(result, attempt, failures, temperature, seed, meter)
            failures.append(AttemptFailure(attempt, result.reason, result.detail, reply.raw))
        return Outcome(None, cfg.max_attempts, failures, meter=meter)


def finalize(draft: Draft, position: int) -> tuple[list[str], str]:
    """(choices with the answer at `position`, CoT whose final line names the new letter)."""
    choices = place(draft.answer, draft.distractors, position)
    cot = draft.cot
    named = final_answer_text(cot)
    if named and match_option(named, draft.options) == draft.answer_index:
        cot = with_final_answer(cot, position, choices)
    return choices, cot


# ---------------------------------------------------------------------------- report
@dataclass
class MCQReport:
    run_id: str = ""
    model: str = ""
    prompt_version: str = ""
    qa_source: str = ""
    note: str = ""
    eligible: int = 0
    skipped_existing: int = 0
    skipped_quarantined: int = 0
    timed_out: int = 0  # QAs whose call timed out: left pending for the next run
    processed: int = 0
    generated: int = 0
    held_out: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # final reason per held-out QA
    attempt_reasons: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    outside_model_share: float = 0.0
    mcqs_per_minute: float = 0.0
    tokens_per_second: float = 0.0
    funnel: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# ---------------------------------------------------------------------------- the run's tally
@dataclass
class Tally:
    """What a run counts across its batches, and the state that spans them."""

    report: MCQReport
    attempt_row: FunnelRow
    final_reasons: Counter[str]
    balancer: PositionBalancer
    stale: dict[str, list[str]]
    version: str
    model: str
    cfg: MCQSettings


def record_outcome(
    t: Tally, qa: dict, outcome: Outcome, record: Any, rows: tuple[list, list, list]
) -> str:
    """Count one QA's outcome and add its rows to (MCQs, quarantine, superseded ids); the
    log line of a QA held out ("" when it got its MCQ)."""
    mcq_rows, quarantine_rows, superseded = rows
    t.report.processed += 1
    t.report.attempts += outcome.attempts
    t.attempt_row.entered += outcome.attempts
    for failure in outcome.failures:
        t.attempt_row.hold(failure.reason)
        quarantine_rows.append(quarantine_row(qa, t.version, t.cfg, failure, record.run_id))
    if outcome.timed_out:
        t.report.timed_out += 1
        return (
            f"QA {qa['qa_id'][:8]}: the model call timed out at attempt {outcome.attempts}; "
            "the QA stays pending"
        )
    if outcome.draft is None:
        last = outcome.failures[-1]
        t.final_reasons[last.reason] += 1
        return (
            f"QA {qa['qa_id'][:8]}: no usable MCQ after "
            f"{outcome.attempts} attempts ({last.reason}: {last.detail})"
        )
    t.attempt_row.passed += 1
    position = t.balancer.take()
    mcq_rows.append(mcq_row(qa, outcome, position, t.version, t.model, t.cfg, record))
    superseded.extend(t.stale.get(qa["qa_id"], []))
    return ""


def close_report(t: Tally, meter: Meter, clock: float) -> None:
    """The run's totals into its report (the funnel is added from the store)."""
    report = t.report
    report.held_out = sum(t.final_reasons.values())
    report.failed_attempts = t.attempt_row.held_out
    report.reasons = dict(t.final_reasons)
    report.attempt_reasons = dict(t.attempt_row.reasons)
    report.positions = {letter(i): n for i, n in enumerate(t.balancer.counts)}
    report.llm = meter.as_dict()
    finish_report(report, meter, clock)


def run_counts(report: MCQReport) -> dict[str, Any]:
    """The run row's counts: the report less its names and note."""
    names = ("run_id", "model", "prompt_version", "note")
    return {key: value for key, value in report.to_dict().items() if key not in names}


def generate_one(
    generator: MCQGenerator, captions: dict[str, str], images: dict[str, Any], qa: dict
) -> Outcome:
    return generator.generate(qa, captions.get(qa["qa_id"], ""), images.get(qa["figure_id"]))


def finish_report(report: MCQReport, meter: Meter, clock: float) -> None:
    report.seconds = round(time.perf_counter() - clock, 3)
    model_s = meter.model_seconds
    if report.seconds > 0:
        report.outside_model_share = round(max(0.0, 1 - model_s / report.seconds), 4)
        report.mcqs_per_minute = round(report.generated * 60 / report.seconds, 3)
    if model_s > 0:
        report.tokens_per_second = round(meter.completion_tokens / model_s, 2)


def quarantine_row(
    qa: dict, version: str, cfg: MCQSettings, failure: AttemptFailure, run_id: str
) -> dict:
    return Quarantined(
        stage=STAGE,
        reason=failure.reason,
        item_kind=ITEM_QA,
        item_id=qa["qa_id"],
        source=qa["qa_id"],
        ref=f"{version}#{failure.attempt}",
        detail=f"attempt {failure.attempt}/{cfg.max_attempts}: {failure.detail}",
        payload=failure.raw[:PAYLOAD_CHARS],
        attempt=failure.attempt,
        version=version,
    ).row(run_id)


def mcq_row(
    qa: dict,
    outcome: Outcome,
    position: int,
    version: str,
    model: str,
    cfg: MCQSettings,
    record: Any,
) -> dict:
    draft = outcome.draft
    assert draft is not None
    choices, cot = finalize(draft, position)
    params = {
        "prompt_version": version,
        "model": model,
        "n_choices": cfg.n_choices,
        "attempt": outcome.attempts,
        "temperature": round(outcome.temperature, 3),
        "seed": outcome.seed,
        "position": position,
        "model_answer_index": draft.answer_index,
        "qa_task_type": qa["task_type"],
        "notes": draft.notes,
    }
    return {
        "mcq_id": text_id(qa["qa_id"], draft.question, *choices),
        "qa_id": qa["qa_id"],
        "figure_id": qa["figure_id"],
        "image_ids": [qa["figure_id"]],
        "question": draft.question,
        "choices": choices,
        "correct_index": position,
        "correct_answer": choices[position],
        "cot": cot,
        "task_str": draft.task,
        "family": FAMILY_CAPTION,
        "status": STATUS_PENDING,
        "origin": ORIGIN,
        "model": model,
        "prompt_version": version,
        "params_json": json.dumps(params, ensure_ascii=False),
        "created_at": utcnow(),
        "run_id": record.run_id,
    }


def write_batch(
    store: Store,
    mcq_rows: list[dict],
    quarantine_rows: list[dict],
    superseded: list[str],
    version: str,
) -> None:
    if mcq_rows:
        store.insert_new("mcqs", mcq_rows)
    if quarantine_rows:
        store.insert_new("quarantine", quarantine_rows)
    if superseded:
        store.update_where(
            "mcqs",
            in_list("mcq_id", superseded),
            {"status": STATUS_HELD_OUT, "reason": SUPERSEDED, "superseded_by": version},
        )
