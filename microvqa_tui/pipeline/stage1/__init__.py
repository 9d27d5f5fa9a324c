"""Stage 1 of MicroVQA++: caption -> QA pairs of three task types, checked, with quarantine.

`run_stage1` is the pipeline step. Names are resolved lazily so that importing
`microvqa_tui.config.stage1` (done by `config`) loads neither the store nor a
model library.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Stage1Report": "microvqa_tui.pipeline.stage1.run",
    "run_stage1": "microvqa_tui.pipeline.stage1.run",
    "Stage1Settings": "microvqa_tui.config.stage1",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
