"""Consistency signals per QA (NLI, CLIP, text similarity, agent), with availability flags.

`run_signals` is the pipeline step; `statement.to_statement` turns a QA into the
declarative sentence tested by NLI. Names are resolved lazily (`common.lazy`): importing
this package stays light.
"""

from __future__ import annotations

from microvqa_tui.common.lazy import lazy_names
from microvqa_tui.config.signals import EmbedSettings, SignalSettings

_EXPORTS = {"SignalsReport": "run", "run_signals": "run", "to_statement": "statement"}

__all__ = ["EmbedSettings", "SignalSettings", "SignalsReport", "run_signals", "to_statement"]


__getattr__ = lazy_names(__name__, _EXPORTS)
