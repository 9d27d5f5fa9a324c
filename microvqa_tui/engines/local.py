"""The in-process engine: load the step's models here, process batch after batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from microvqa_tui.engines.base import Done, Worker
from microvqa_tui.progress import CancelToken

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings


class LocalEngine:
    name = "local"

    def __init__(self, batch_size: int = 0) -> None:
        self.batch_size = batch_size  # 0 = the step's own

    def run(
        self,
        step: Worker,
        settings: Settings,
        batches: Iterable[list[Any]],
        cancel: CancelToken,
    ) -> Iterator[Done]:
        step.load(settings)
        for items in batches:  # the batch source stops once `cancel` is set
            yield Done(step.process(items), len(items))
