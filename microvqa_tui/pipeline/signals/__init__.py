"""Consistency signals per QA (NLI, CLIP, text similarity, agent), with availability flags.

`run_signals` is the pipeline step; `statement.to_statement` turns a QA into the
declarative sentence tested by NLI. Names are resolved lazily so that importing
`microvqa_tui.config.signals` (done by `config`) stays light.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "SignalsReport": "microvqa_tui.pipeline.signals.run",
    "run_signals": "microvqa_tui.pipeline.signals.run",
    "SignalSettings": "microvqa_tui.config.signals",
    "EmbedSettings": "microvqa_tui.config.signals",
    "to_statement": "microvqa_tui.pipeline.signals.statement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
