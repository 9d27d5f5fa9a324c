"""Selection after stage 3: shortcut removal (RefineBot-like), Bloom levels, reasoning-quality
checks (MMFineReason-like), difficulty-aware selection, and the selection funnel.

`run_select` is the pipeline step (`microvqa run select`); `SelectSettings` is its settings
section (`select`); `funnel.funnel_rows(store)` gives the funnel for the CLI and the TUI.
Importing this package loads no model and no store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microvqa_tui.config.select import SelectSettings

if TYPE_CHECKING:  # annotations only: importing this package loads no model and no store
    from microvqa_tui.config import Settings
    from microvqa_tui.engines.base import Engine
    from microvqa_tui.models.client import LLMClient
    from microvqa_tui.pipeline.select.run import SelectReport
    from microvqa_tui.progress import CancelToken, ProgressReporter
    from store import Store

__all__ = ["SelectSettings", "run_select"]


def run_select(
    store: Store,
    settings: Settings,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
    llm: LLMClient | None = None,
    engine: Engine | None = None,
) -> SelectReport:
    from microvqa_tui.pipeline.select.step import run_select as run

    return run(store, settings, progress=progress, cancel=cancel, llm=llm, engine=engine)
