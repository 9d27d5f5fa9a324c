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

`Stage1Step` is a batch step (`pipeline.batchstep`), so it runs in process or on Ray actors:
pending = the captions with attempts left, one key per figure (a figure never spans two
batches, so the duplicate check sees the same questions on any engine); read = their texts
and the figure's stored questions; process = the LLM calls and checks (`calls.py`), on a
worker that loaded the client once; write = quarantine and QA rows (`insert_new`: idempotent).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

from microvqa_tui.common.prompts import load_template, task_parts
from microvqa_tui.config.stage1 import Stage1Settings
from microvqa_tui.engines.base import Engine
from microvqa_tui.models.client import TIMEOUT_HINT, JsonResult, LLMClient
from microvqa_tui.pipeline.batchstep import BatchStep, Pending, run_batch_step
from microvqa_tui.pipeline.stage1 import checks
from microvqa_tui.pipeline.stage1.calls import (
    Attempt,
    Caption,
    check_attempt,
    check_limits,
    qa_row,
    quarantine_row,
    request_for,
)
from microvqa_tui.pipeline.step import batched, to_jsonable
from microvqa_tui.progress import CancelToken, ProgressReporter
from microvqa_tui.vocabulary import ORIGIN_STAGE1 as ORIGIN
from microvqa_tui.vocabulary import STAGE_STAGE1 as STAGE
from microvqa_tui.vocabulary import TASK_TYPES
from store import Store
from store.queries import in_list, quote
from store.schema import utcnow

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


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


# ----------------------------------------------------------------------------- store reads
def _captions(store: Store) -> list[Caption]:
    rows = store.rows("captions", columns=["caption_id", "figure_id", "text"])
    rows.sort(key=lambda r: (r["figure_id"], r["caption_id"]))
    return [Caption(r["caption_id"], r["figure_id"], r["text"] or "") for r in rows]


def _attempts_made(store: Store, prompt_version: str) -> Counter[tuple[str, str]]:
    """(caption_id, task_type) -> attempts already answered (QA or quarantine) for this
    version; a timed-out call answered nothing (the machine was busy), so it is done again."""
    made: Counter[tuple[str, str]] = Counter()
    where = f"origin = {quote(ORIGIN)} AND prompt_version = {quote(prompt_version)}"
    for row in store.rows("qas", where, ["caption_id", "task_type"]):
        made[(row["caption_id"], row["task_type"])] += 1
    where = (
        f"stage = {quote(STAGE)} AND version = {quote(prompt_version)}"
        f" AND reason != {quote(checks.MODEL_TIMEOUT)}"
    )
    for row in store.rows("quarantine", where, ["item_id", "task_type"]):
        made[(row["item_id"], row["task_type"])] += 1
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
def load_llm(settings: Settings) -> LLMClient:
    from microvqa_tui.models.registry import get_llm

    return get_llm(settings)


def _llm_id(settings: Settings) -> tuple[str, LLMClient | None]:
    """(model id, client or None), without loading an in-process model (`client_id`)."""
    from microvqa_tui.models import registry

    return registry.client_id("llm", settings)


@dataclass
class _Figure:
    """One work item: a figure's pending attempts (in caption, task, k order) and the
    question keys already stored for it (the duplicate check's start)."""

    figure_id: str
    attempts: list[Attempt]
    seen: list[str]


Key = tuple[str, ...]  # the caption ids of one figure with attempts to make
Result = dict[str, Any]  # one attempt: its QA row or its quarantine row, and its cost


class Stage1Step(BatchStep[Key, _Figure, Result]):
    """A key is a figure (its captions with pending attempts), so a figure never spans two
    batches: the duplicate check sees the same questions on any engine, in any order."""

    name = STAGE
    reads = ("captions", "qas", "quarantine")
    writes = ("qas", "quarantine")
    # `todo` (caption id -> attempts) stays on the driver; `loaded` holds the LLM client
    worker_state = ("loaded", "todo")

    def __init__(self, llm: LLMClient | None = None) -> None:
        self.loaded: dict[str, LLMClient] = {"llm": llm} if llm is not None else {}
        self.todo: dict[str, list[tuple[str, int]]] = {}
        self.cfg: Stage1Settings | None = None

    def section(self, settings: Settings) -> Stage1Settings:
        """Settings, template, model id and prompt version (once, before the run row)."""
        if self.cfg is not None:
            return self.cfg
        cfg = settings.stage1
        self.template = load_template(cfg.prompt_file, cfg.prompt_dir)
        for task_type in cfg.task_types:
            task_parts(self.template, task_type)  # fail early on a missing task section
        if "llm" in self.loaded:
            self.model = self.loaded["llm"].model_id
        else:
            self.model, client = _llm_id(settings)
            if client is not None:
                self.loaded["llm"] = client
        self.prompt_version = self.template.version(self.model)
        self.limits = check_limits(cfg)
        self.seed_base = settings.models.seed
        self.cfg = cfg
        return cfg

    def config(self, settings: Settings) -> dict[str, Any]:
        cfg = self.section(settings)
        config = {**cfg.model_dump(mode="json"), "prompt_version": self.prompt_version}
        return {**config, "prompt_file": str(self.template.path)}

    def pending(self, store: Any, settings: Settings) -> Pending[Key]:
        cfg = self.section(settings)
        captions = _captions(store)
        made = _attempts_made(store, self.prompt_version)
        todo: list[tuple[Caption, list[tuple[str, int]]]] = []
        for caption in captions:
            attempts = [
                (task_type, k)
                for task_type in cfg.task_types
                for k in range(made[(caption.caption_id, task_type)], cfg.qas_per_task)
            ]
            if attempts:
                todo.append((caption, attempts))
        counts = {
            "captions_total": len(captions),
            "captions_done_before": len(captions) - len(todo),
        }
        todo = todo[: cfg.limit] if cfg.limit else todo
        self.todo = {c.caption_id: attempts for c, attempts in todo}
        keys = [
            tuple(c.caption_id for c, _ in group)
            for _, group in groupby(todo, key=lambda t: t[0].figure_id)
        ]
        versions = {"llm": self.model, "prompt_version": self.prompt_version}
        return Pending(keys, versions, counts, description=f"stage 1 · {self.model}")

    def read(self, store: Any, keys: Sequence[Key]) -> list[_Figure]:
        ids = [caption_id for key in keys for caption_id in key]
        rows = store.get_many("captions", ids, ["caption_id", "figure_id", "text"])
        by_id = {
            r["caption_id"]: Caption(r["caption_id"], r["figure_id"], r["text"] or "") for r in rows
        }
        seen = _figure_questions(store, [c.figure_id for c in by_id.values()])
        items = []
        for key in keys:
            captions = [by_id[i] for i in key if i in by_id]
            if captions:
                attempts = [
                    Attempt(c, task_type, k)
                    for c in captions
                    for task_type, k in self.todo[c.caption_id]
                ]
                figure_id = captions[0].figure_id
                items.append(_Figure(figure_id, attempts, list(seen.get(figure_id, []))))
        return items

    def load(self, settings: Settings) -> None:
        from microvqa_tui.errors import PipelineError

        self.section(settings)
        if "llm" not in self.loaded:
            self.loaded["llm"] = load_llm(settings)
        if self.loaded["llm"].model_id != self.model:
            found = self.loaded["llm"].model_id
            raise PipelineError(f"stage1 worker loaded LLM {found}, not {self.model}")

    def process(self, items: Sequence[_Figure]) -> list[Result]:
        """The batch's calls go to the client together; they are checked in order."""
        assert self.cfg is not None
        flat = [(item, attempt) for item in items for attempt in item.attempts]
        requests = [request_for(self.template, a, self.cfg, self.seed_base) for _, a in flat]
        results = self.loaded["llm"].ask_all(requests)
        return [self._outcome(item, a, gen) for (item, a), gen in zip(flat, results, strict=True)]

    def _outcome(self, item: _Figure, attempt: Attempt, gen: JsonResult) -> Result:
        assert self.cfg is not None
        outcome = check_attempt(
            gen, self.template, attempt, self.cfg, self.limits, {item.figure_id: item.seen}
        )
        out: Result = {
            "caption_id": attempt.caption.caption_id,
            "task_type": attempt.task_type,
            "tokens": gen.completion_tokens,
            "seconds": gen.seconds,
        }
        if outcome.failure is not None:
            out["reason"] = outcome.failure.reason
            out["quarantine"] = quarantine_row(attempt, outcome, self.prompt_version, self.model)
            return out
        item.seen.append(checks.question_key(outcome.fields["question"]))
        out["qa"] = qa_row(attempt, outcome.fields, self.model, self.prompt_version)
        return out

    def write(self, store: Any, results: Sequence[Result]) -> dict[str, int]:
        """Quarantine rows first, then QAs (as the batch's calls were made)."""
        stamp = {"created_at": utcnow(), "run_id": self.run_id}
        held = [{**r["quarantine"], **stamp} for r in results if "quarantine" in r]
        kept = [{**r["qa"], **stamp} for r in results if "qa" in r]
        counts: Counter[str] = Counter()
        counts["quarantined"] = store.insert_new("quarantine", held) if held else 0
        counts["qas_written"] = store.insert_new("qas", kept) if kept else 0
        counts["captions"] = len({r["caption_id"] for r in results})
        for r in results:
            counts["calls"] += 1
            counts["calls." + r["task_type"]] += 1
            counts[("qas." + r["task_type"]) if "qa" in r else ("failed." + r["reason"])] += 1
            counts["tokens"] += r["tokens"]
            counts["generation_s"] += r["seconds"]
        return dict(counts)

    def report(
        self, run_id: str, pending: Pending[Key], counts: Counter[str], seconds: float
    ) -> Stage1Report:
        assert self.cfg is not None
        types = [t for t in TASK_TYPES if t in self.cfg.task_types]
        failures = Counter({k[7:]: v for k, v in counts.items() if k.startswith("failed.") and v})
        kept = sum(counts["qas." + t] for t in types)
        return Stage1Report(
            run_id=run_id,
            model=self.model,
            prompt_version=self.prompt_version,
            captions_total=pending.counts.get("captions_total", 0),
            captions_done_before=pending.counts.get("captions_done_before", 0),
            captions_processed=counts["captions"],
            calls=counts["calls"],
            qas_written=counts["qas_written"],
            qas_by_task={t: counts["qas." + t] for t in types},
            calls_by_task={t: counts["calls." + t] for t in types},
            quarantined=counts["quarantined"],
            failures_by_reason=dict(failures.most_common()),
            survival=kept / counts["calls"] if counts["calls"] else 0.0,
            tokens=counts["tokens"],
            tokens_per_s=counts["tokens"] / counts["generation_s"]
            if counts["generation_s"]
            else 0.0,
            seconds=seconds,
        )

    def run_counts(self, report: Stage1Report) -> dict[str, Any]:
        names = ("captions_total", "captions_processed", "calls", "qas_written", "quarantined")
        out: dict[str, Any] = {name: getattr(report, name) for name in names}
        out.update(qas_by_task=report.qas_by_task, failures_by_reason=report.failures_by_reason)
        return {**out, "tokens": report.tokens}

    def run_timings(self, report: Stage1Report) -> dict[str, float]:
        generation = report.tokens / report.tokens_per_s if report.tokens_per_s else 0.0
        return {"generation_s": round(generation, 3), "tokens_per_s": round(report.tokens_per_s, 2)}

    def summary(self, report: Stage1Report) -> str:
        if not report.calls:
            return "stage 1: every caption already has its QAs for this prompt version"
        kept = sum(report.qas_by_task.values())
        line = (
            f"stage 1: {kept} QAs kept of {report.calls} calls "
            f"({report.survival:.0%}); {report.quarantined} quarantined"
        )
        if timed_out := report.failures_by_reason.get(checks.MODEL_TIMEOUT, 0):
            line += f"; {timed_out} calls timed out — {TIMEOUT_HINT}"
        return line


def run_stage1(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    llm: LLMClient | None = None,
    engine: Engine | None = None,
) -> Stage1Report:
    """Generate QAs for every caption lacking them for the current prompt_version.

    `llm` is an in-process client to use (default: the registry's, loaded per worker);
    `engine` defaults to the one in `settings.engine`."""
    return run_batch_step(
        Stage1Step(llm),
        store,
        settings,
        engine=engine,
        progress=progress,
        cancel=cancel,
    )
