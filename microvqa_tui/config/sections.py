"""The base of every settings section, and the lookup a step uses to read its own.

Kept apart from `config/__init__.py` so that the step sections (`config/stage1.py`, ...) can
subclass `Section` while `config` imports them to mount them on `Settings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # `config` imports this module to mount the sections
    from microvqa_tui.config import Settings

S = TypeVar("S", bound=BaseModel)


class Section(BaseModel):
    """A settings section; unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


def section(settings: Settings, name: str, cls: type[S]) -> S:
    """The settings section `name` (`settings.<name>`), checked to be a `cls`."""
    value = getattr(settings, name)
    if not isinstance(value, cls):
        raise TypeError(f"settings.{name} is a {type(value).__name__}, not a {cls.__name__}")
    return value
