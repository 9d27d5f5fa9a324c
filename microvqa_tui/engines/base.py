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
