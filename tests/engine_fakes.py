"""A tiny batch step whose worker fails on one item or at load, picklable to Ray actors
(importable there as `tests.engine_fakes`, unlike a test module)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from microvqa_tui.errors import ModelMissingError
from microvqa_tui.pipeline.batchstep import BatchStep, Pending


@dataclass
class Report:
    processed: int

    def to_dict(self) -> dict[str, Any]:
        return {"processed": self.processed}


@dataclass
class Item:
    position: int
    row: dict[str, Any]


class FailingStep(BatchStep[str, Item, str]):
    """Items `a`..`f` in batches of 3; `process` raises on `bad`, `load` when `missing`."""

    name = "failing"

    def __init__(self, bad: str = "", missing: bool = False) -> None:
        self.bad, self.missing = bad, missing

    def config(self, settings: Any) -> dict[str, Any]:
        return {"bad": self.bad}

    def batch_size(self, settings: Any) -> int:
        return 3

    def pending(self, store: Any, settings: Any) -> Pending[str]:
        return Pending(list("abcdef"))

    def read(self, store: Any, keys: Sequence[str]) -> list[Item]:
        return [
            Item(i, {"text": f"text of {k}", "caption_id": f"cap-{k}"}) for i, k in enumerate(keys)
        ]

    def load(self, settings: Any) -> None:
        if self.missing:
            raise ModelMissingError("model 'fake-encoder' is not installed")

    def process(self, items: Sequence[Item]) -> list[str]:
        for item in items:
            if item.row["caption_id"] == self.bad:
                raise ValueError(f"cannot read\n{item.row['text']!r}")
        return [item.row["caption_id"] for item in items]

    def write(self, store: Any, results: Sequence[str]) -> dict[str, int]:
        return {"written": len(results)}

    def report(self, run_id: str, pending: Pending[str], counts: Counter[str], seconds: float):
        return Report(counts["processed"])
