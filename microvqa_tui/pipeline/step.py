"""Small helpers shared by the pipeline steps: batching, reports, model lookups.

Nothing here loads a model or a heavy library; a step module imports what it needs lazily.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def to_jsonable(value: Any) -> Any:
    """Dataclasses, pydantic models, sets and tuples as plain JSON-ready values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, float):
        return round(value, 4)
    return value


@dataclass
class StepTimer:
    """Wall-clock seconds per named phase (`with timer.phase("load"): ...`)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


class _Phase:
    def __init__(self, timer: StepTimer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start
        self.timer.seconds[self.name] = self.timer.seconds.get(self.name, 0.0) + elapsed


# ----------------------------------------------------------------------------- models
MODEL_ROLES = ("text", "clip", "nli", "llm", "vlm")


def configured_model(settings: Settings, role: str) -> str:
    """The model named in the settings for `role` (used when the model itself is absent)."""
    return str(getattr(settings.models, role) or role)


def model_name(model: Any, settings: Settings, role: str) -> str:
    """The id stored with every output of `model` (its own id, else the configured name)."""
    for attr in ("model_id", "name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return configured_model(settings, role)


def load_model(role: str, settings: Settings, provider: Any = None) -> tuple[Any, str]:
    """(model, "") or (None, message with how to get it) when the model is missing.

    `provider` has `get_<role>(settings)` (default: `microvqa_tui.models.registry`); tests
    pass fakes. Only a missing model is turned into a message; a broken one raises.
    """
    from microvqa_tui.errors import ModelMissingError

    if provider is None:
        from microvqa_tui.models import registry as provider
    getter = getattr(provider, f"get_{role}")
    try:
        model = getter(settings)
    except ModelMissingError as exc:
        return None, str(exc)
    if model is None:
        return None, f"no {role} model is configured (models.{role} is empty)"
    return model, ""
