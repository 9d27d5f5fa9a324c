"""The one writer of quarantine rows: ingest, stage 1 and stage 3 describe what they refused
with a `Quarantined` and store `Quarantined.row()`.

The typed fields say which item and which attempt (the kind and id of the item, the task
type asked for, the attempt number, the prompt version), so code that resumes a step reads
them with a filter instead of parsing `source` and `ref`, which stay for people to read and
to make the row's id (unchanged from the stores written before the typed fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from microvqa_tui.vocabulary import ITEM_KINDS, QUARANTINE_REASONS
from store.ids import text_id
from store.schema import utcnow


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One refused input or model output, bound for the `quarantine` table."""

    stage: str  # vocabulary.STAGE_*
    reason: str  # one of vocabulary.QUARANTINE_REASONS[stage]
    item_kind: str  # vocabulary.ITEM_*
    item_id: str
    source: str  # for people (and the id): where it came from
    ref: str = ""
    detail: str = ""
    payload: str = ""
    task_type: str = ""
    attempt: int = 0
    version: str = ""

    def __post_init__(self) -> None:
        # A code outside the vocabulary is a programming error: funnels and the TUI count
        # reasons by code, so a new one must be defined (and described) there first.
        if self.reason not in QUARANTINE_REASONS.get(self.stage, ()):
            raise ValueError(f"unknown quarantine reason {self.reason!r} of stage {self.stage!r}")
        if self.item_kind not in ITEM_KINDS:
            raise ValueError(f"unknown quarantine item kind {self.item_kind!r}")

    @property
    def quarantine_id(self) -> str:
        return text_id(self.stage, self.source, self.ref, self.reason)

    def row(self, run_id: str = "", created_at: datetime | None = None) -> dict[str, Any]:
        """The `quarantine` row (schema `store.schema.Quarantine`)."""
        return {
            "quarantine_id": self.quarantine_id,
            "stage": self.stage,
            "source": self.source,
            "ref": self.ref,
            "reason": self.reason,
            "detail": self.detail,
            "payload": self.payload,
            "created_at": created_at or utcnow(),
            "run_id": run_id,
            "item_kind": self.item_kind,
            "item_id": self.item_id,
            "task_type": self.task_type,
            "attempt": self.attempt,
            "version": self.version,
        }
