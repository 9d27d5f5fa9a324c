"""Selection after stage 3: shortcut removal (RefineBot-like), Bloom levels, reasoning-quality
checks (MMFineReason-like), difficulty-aware selection, and the selection funnel.

`run_select` is the pipeline step (`microvqa run select`); `SelectSettings` is its settings
section (`select`); `funnel.funnel_rows(store)` gives the funnel for the CLI and the TUI.
Names are resolved lazily: importing this package loads no model and no store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microvqa_tui.common.lazy import lazy_names
from microvqa_tui.config.select import SelectSettings

if TYPE_CHECKING:  # the lazy names, for type checkers
    from microvqa_tui.pipeline.select.run import SelectReport
    from microvqa_tui.pipeline.select.step import run_select

_EXPORTS = {
    "SelectReport": "run",
    "run_select": "step",
}

__all__ = ["SelectReport", "SelectSettings", "run_select"]

__getattr__ = lazy_names(__name__, _EXPORTS)
