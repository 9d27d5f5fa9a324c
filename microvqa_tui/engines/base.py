"""What an engine runs and yields; imports nothing of the pipeline (pipeline -> engines)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from microvqa_tui.progress import CancelToken

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


class Worker(Protocol):
    """The worker side of a step (`pipeline.batchstep.BatchStep`), picklable to actors."""

    def load(self, settings: Settings) -> None: ...

    def process(self, items: Sequence[Any]) -> list[Any]: ...


@dataclass
class Done:
    """A finished batch, as an engine yields it: its results and how many items it had."""

    results: list[Any]
    size: int


class Engine(Protocol):
    """Runs `worker.process` over batches; yields each finished batch (any order)."""

    name: str
    batch_size: int  # items per batch; 0 = the step's own

    def run(
        self,
        worker: Worker,
        settings: Settings,
        batches: Iterable[list[Any]],
        cancel: CancelToken,
    ) -> Iterator[Done]: ...


def item_label(item: Any, depth: int = 2) -> str:
    """A short name of a work item for messages: its first `*_id` field (looked for in the
    item, its attributes and what it holds, two levels down), else its repr, cut short."""
    found = _first_id(item, depth)
    return found or " ".join(repr(item).split())[:80]


def _first_id(value: Any, depth: int) -> str:
    fields = value if isinstance(value, dict) else getattr(value, "__dict__", None)
    if isinstance(fields, dict):
        for key, field_value in fields.items():
            if str(key).endswith("_id") and isinstance(field_value, str) and field_value:
                return f"{key} {field_value}"
        children: Sequence[Any] = list(fields.values())
    elif isinstance(value, (list, tuple)):
        children = value
    else:
        return ""
    for child in children if depth > 0 else ():
        if found := _first_id(child, depth - 1):
            return found
    return ""
