"""Stage 3 of MicroVQA++: kept QA pairs -> multiple-choice questions with a chain of thought.

`run_mcq` is the pipeline step (`microvqa run mcq`); `MCQSettings` is its settings section
(`mcq`). Importing this package loads no model and no store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from microvqa_tui.config.mcq import MCQSettings

if TYPE_CHECKING:
    from microvqa_tui.pipeline.stage3.generate import MCQReport

__all__ = ["MCQSettings", "run_mcq"]


def run_mcq(
    store, settings, *, progress=None, cancel=None, llm: Any = None, engine: Any = None
) -> MCQReport:
    from microvqa_tui.pipeline.stage3.step import run_mcq as run

    return run(store, settings, progress=progress, cancel=cancel, llm=llm, engine=engine)
