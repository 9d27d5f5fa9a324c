"""Stage 3 of MicroVQA++: kept QA pairs -> multiple-choice questions with a chain of thought.

`run_mcq` is the pipeline step (`microvqa run mcq`); `MCQSettings` is its settings section
(`mcq`). Importing this package loads no model and no store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microvqa_tui.config.mcq import MCQSettings

if TYPE_CHECKING:  # annotations only: importing this package loads no model and no store
    from microvqa_tui.config import Settings
    from microvqa_tui.engines.base import Engine
    from microvqa_tui.models.client import LLMClient
    from microvqa_tui.pipeline.stage3.generate import MCQReport
    from microvqa_tui.progress import CancelToken, ProgressReporter
    from store import Store

__all__ = ["MCQSettings", "run_mcq"]


def run_mcq(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    llm: LLMClient | None = None,
    engine: Engine | None = None,
) -> MCQReport:
    from microvqa_tui.pipeline.stage3.step import run_mcq as run

    return run(store, settings, progress=progress, cancel=cancel, llm=llm, engine=engine)
