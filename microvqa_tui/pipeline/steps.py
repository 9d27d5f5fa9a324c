"""The pipeline's steps in order, as the CLI (`microvqa run STEP`) and the TUI see them.

Each step is a function `run(store, settings, *, progress, cancel) -> report`, where the
report has `to_dict()`. Steps are imported lazily by dotted path so that listing them (the
TUI's first paint, `--help`) loads no heavy library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from microvqa_tui.config import Settings
from microvqa_tui.errors import PipelineError
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

if TYPE_CHECKING:  # the store pulls in lancedb: not needed to list the steps
    from store import Store


class StepReport(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class StepSpec:
    name: str
    title: str
    description: str
    target: str  # "package.module:function"
    reads: tuple[str, ...]  # tables the step reads
    writes: tuple[str, ...]  # tables the step writes
    engines: tuple[str, ...] = ("local",)  # where it can run (`microvqa_tui.engines`)

    def load(self):
        module_name, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module_name), function)


STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "embed",
        "Embed",
        "CLIP image/caption and MiniLM text embeddings for figures, captions and QAs, and a "
        "model-free pixel descriptor of each figure",
        "microvqa_tui.pipeline.embed:run_embed",
        reads=("figures", "captions", "qas"),
        writes=("emb_*",),
        engines=("local", "ray"),
    ),
    StepSpec(
        "stage1",
        "Stage 1 · QA generation",
        "the local LLM writes QA pairs of three task types from each caption",
        "microvqa_tui.pipeline.stage1:run_stage1",
        reads=("captions",),
        writes=("qas", "quarantine"),
        engines=("local", "ray"),
    ),
    StepSpec(
        "signals",
        "Signals",
        "NLI, CLIP, text-similarity, agent and pixel-neighbour caption agreement signals per QA",
        "microvqa_tui.pipeline.signals:run_signals",
        reads=("qas", "captions", "figures"),
        writes=("signals",),
        engines=("local", "ray"),
    ),
    StepSpec(
        "graph",
        "Stage 2 · HiCQA-Graph",
        "GNN consistency score per QA from the signals; keeps the consistent ones",
        "microvqa_tui.pipeline.graph:run_graph",
        reads=("qas", "signals", "emb_*", "decisions"),
        writes=("qas", "edges"),
    ),
    StepSpec(
        "mcq",
        "Stage 3 · MCQ + CoT",
        "multiple-choice questions with distractors and chain-of-thought from kept QAs",
        "microvqa_tui.pipeline.stage3:run_mcq",
        reads=("qas",),
        writes=("mcqs", "quarantine"),
        engines=("local", "ray"),
    ),
    StepSpec(
        "select",
        "Selection",
        "shortcut removal, Bloom levels, reasoning checks, difficulty-aware selection",
        "microvqa_tui.pipeline.select:run_select",
        reads=("mcqs",),
        writes=("mcqs",),
        engines=("local", "ray"),
    ),
    StepSpec(
        "dedup",
        "Near-duplicates",
        "groups of near-duplicate images, captions and questions, with a proposed keeper",
        "microvqa_tui.pipeline.dedup:run_dedup",
        reads=("figures", "captions", "mcqs", "emb_*"),
        writes=("dup_groups",),
    ),
)

STEPS_BY_NAME = {step.name: step for step in STEPS}


def get_step(name: str) -> StepSpec:
    try:
        return STEPS_BY_NAME[name]
    except KeyError:
        known = ", ".join(STEPS_BY_NAME)
        raise PipelineError(f"unknown step {name!r}; steps are: {known}") from None


def with_engine(name: str, settings: Settings, kind: str, address: str | None) -> Settings:
    """`settings` with the engine chosen for this run (`--engine`, `--ray-address`); an
    error when step `name` cannot run on it."""
    spec = get_step(name)
    if kind not in spec.engines:
        raise PipelineError(
            f"step {name!r} cannot run on the {kind} engine yet",
            hint=f"it runs on: {', '.join(spec.engines)}",
        )
    changes: dict[str, Any] = {"kind": kind}
    if address is not None:
        changes["ray_address"] = address
    return settings.model_copy(update={"engine": settings.engine.model_copy(update=changes)})


def run_step(
    name: str,
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> StepReport:
    function = get_step(name).load()
    return function(
        store, settings, progress=progress or NullProgress(), cancel=cancel or CancelToken()
    )
