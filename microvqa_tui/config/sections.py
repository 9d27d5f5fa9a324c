"""The base of every settings section.

Kept apart from `config/__init__.py` so that the step sections (`config/stage1.py`, ...) can
subclass `Section` while `config` imports them to mount them on `Settings`; a step reads its
own section as `settings.<section>`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section; unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")
