"""The audit trail of human decisions, read back: records, history and standing labels.

Written by `services.review` (the TUI's and the CLI's review), read here so that a step (the
graph's human labels) and the services share one reading without the pipeline importing the
services. `changes_json` maps field names to `[before, after]`; keys starting with an
underscore are references (see `services.review`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from microvqa_tui.vocabulary import ACTION_UNDO, REVIEW_OF_ACTION
from store import Store
from store.queries import quote

BATCH_KEY = "_batch"  # the id shared by the decisions of one bulk action, undone together
UNDOES_KEY = "_undoes"  # on an undo, the decision it reverts


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the audit trail, with `changes_json` decoded."""

    decision_id: str
    item_type: str
    item_id: str
    action: str
    changes: dict[str, Any]
    user: str
    at: datetime
    note: str = ""

    @property
    def batch(self) -> str | None:
        return self.changes.get(BATCH_KEY)

    @property
    def undoes(self) -> str | None:
        return self.changes.get(UNDOES_KEY)

    @property
    def fields(self) -> dict[str, list[Any]]:
        """The changed fields as {name: [before, after]} (references left out)."""
        return {k: v for k, v in self.changes.items() if not k.startswith("_")}

    def to_row(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "item_type": self.item_type,
            "item_id": self.item_id,
            "action": self.action,
            "changes_json": json.dumps(self.changes, default=str, ensure_ascii=False),
            "user": self.user,
            "at": self.at,
            "note": self.note,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DecisionRecord:
        try:
            changes = json.loads(row.get("changes_json") or "{}")
        except json.JSONDecodeError:
            changes = {}
        return cls(
            decision_id=row["decision_id"],
            item_type=row["item_type"],
            item_id=row["item_id"],
            action=row["action"],
            changes=changes if isinstance(changes, dict) else {},
            user=row.get("user", ""),
            at=row["at"],
            note=row.get("note") or "",
        )


def decision_history(
    store: Store,
    *,
    user: str | None = None,
    item_type: str | None = None,
    item_id: str | None = None,
    limit: int | None = None,
) -> list[DecisionRecord]:
    """Decisions, oldest first, optionally filtered by user and item."""
    clauses = []
    if user is not None:
        clauses.append(f"user = {quote(user)}")
    if item_type is not None:
        clauses.append(f"item_type = {quote(item_type)}")
    if item_id is not None:
        clauses.append(f"item_id = {quote(item_id)}")
    where = " AND ".join(clauses) or None
    rows = store.rows("decisions", where)
    records = sorted((DecisionRecord.from_row(r) for r in rows), key=lambda r: r.at)
    return records[-limit:] if limit else records


def effective_labels(store: Store, item_type: str) -> dict[str, str]:
    """The standing human label of each item of a type (`accept` or `reject`), after undos:
    what a later step (the graph's human labels, the export) should use."""
    return standing_labels(decision_history(store, item_type=item_type))


def standing_labels(records: list[DecisionRecord]) -> dict[str, str]:
    """Item id -> its latest accept/reject that is not undone, from `records` oldest first
    (all of an item's decisions, undos included)."""
    undone = {r.undoes for r in records if r.action == ACTION_UNDO}
    labels: dict[str, str] = {}
    for record in records:
        if record.action in REVIEW_OF_ACTION and record.decision_id not in undone:
            labels[record.item_id] = record.action
    # An undone label falls back to the label before it (if any, and not undone itself).
    return labels
