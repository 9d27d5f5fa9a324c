"""Stage 3 of MicroVQA++: kept QA pairs -> multiple-choice questions with a chain of thought.

`run_mcq` is the pipeline step (`microvqa run mcq`); `MCQSettings` is its settings section
(`mcq`). Names are resolved lazily: importing this package loads no model and no store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microvqa_tui.common.lazy import lazy_names
from microvqa_tui.config.mcq import MCQSettings

if TYPE_CHECKING:  # the lazy names, for type checkers
    from microvqa_tui.pipeline.stage3.generate import MCQReport
    from microvqa_tui.pipeline.stage3.step import run_mcq

_EXPORTS = {
    "MCQReport": "generate",
    "run_mcq": "step",
}

__all__ = ["MCQReport", "MCQSettings", "run_mcq"]

__getattr__ = lazy_names(__name__, _EXPORTS)
