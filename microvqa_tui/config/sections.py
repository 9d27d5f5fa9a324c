"""The base of every settings section, and the lookup a step uses to read its own.

Kept apart from `config/__init__.py` so that the step sections (`config/stage1.py`, ...) can
subclass `Section` while `config` imports them to mount them on `Settings`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

S = TypeVar("S", bound=BaseModel)


class Section(BaseModel):
    """A settings section; unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


def section(settings: Any, name: str, cls: type[S]) -> S:
    """The settings section `name`, or the section's defaults while it is not mounted.

    A step may define its own section class before `config.Settings` carries it; a plain
    dict (e.g. from a test) is validated into the class.
    """
    value = getattr(settings, name, None)
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, BaseModel):
        return cls.model_validate(value.model_dump())
    if isinstance(value, dict):
        return cls.model_validate(value)
    return value  # a duck-typed section (tests)
