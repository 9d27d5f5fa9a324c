"""Stage 1 of MicroVQA++: caption -> QA pairs of three task types, checked, with quarantine.

`run_stage1` is the pipeline step. Names are resolved lazily (`common.lazy`): importing
this package loads neither the store nor a model library.
"""

from __future__ import annotations

from microvqa_tui.common.lazy import lazy_names
from microvqa_tui.config.stage1 import Stage1Settings

_EXPORTS = {"Stage1Report": "run", "run_stage1": "run"}

__all__ = ["Stage1Report", "Stage1Settings", "run_stage1"]


__getattr__ = lazy_names(__name__, _EXPORTS)
