"""What review works on: the item kinds (table, key, review field, editable fields), the
results of bulk and group actions, and the validation of an edit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.common.decisions import DecisionRecord
from microvqa_tui.errors import MicroVQAError


class ReviewError(MicroVQAError):
    """A review action cannot be applied (unknown item, invalid edit, nothing to undo)."""


@dataclass(frozen=True)
class ItemKind:
    item_type: str
    table: str
    key: str
    review_field: str | None  # the column accept/reject set, None when labels only
    editable: tuple[str, ...]


ITEM_KINDS: dict[str, ItemKind] = {
    "mcq": ItemKind(
        "mcq", "mcqs", "mcq_id", "review", ("question", "choices", "correct_index", "cot")
    ),
    "qa": ItemKind("qa", "qas", "qa_id", None, ("question", "answer")),
}


def item_kind(item_type: str) -> ItemKind:
    try:
        return ITEM_KINDS[item_type]
    except KeyError:
        raise ReviewError(
            f"cannot review items of type {item_type!r}", hint=f"use one of {', '.join(ITEM_KINDS)}"
        ) from None


@dataclass
class BulkResult:
    """What a bulk or group action did."""

    batch_id: str
    action: str
    changed: int  # items whose state changed (each got a decision)
    skipped: int = 0  # items already in the requested state
    decisions: list[DecisionRecord] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "action": self.action,
            "changed": self.changed,
            "skipped": self.skipped,
        }


@dataclass
class GroupResult:
    """What a group decision (or its undo) did: the dedup step's counts, and the review batch
    that rejected the keeper's MCQs for a reject_group."""

    group_id: str
    action: str
    outcome: dict[str, Any]
    keeper_rejection: Any = None  # BulkResult on decide, list of undo records on undo

    @property
    def mcqs_changed(self) -> int:
        extra = self.keeper_rejection
        count = extra.changed if isinstance(extra, BulkResult) else len(extra or [])
        return (
            int(self.outcome.get("mcqs_rejected", 0) + self.outcome.get("mcqs_restored", 0)) + count
        )


def new_id() -> str:
    return uuid.uuid4().hex


def clean_edit(kind: ItemKind, row: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Validated, normalised new values for an edit."""
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("question", "answer"):
            text = str(value).strip()
            if not text:
                raise ReviewError(f"the {name} cannot be empty")
            clean[name] = text
        elif name == "cot":
            clean[name] = str(value).strip()
        elif name == "choices":
            choices = [str(c).strip() for c in value]
            if len(choices) < 2:
                raise ReviewError("an MCQ needs at least two options")
            if any(not c for c in choices):
                raise ReviewError("options cannot be empty", hint="delete the empty option")
            if len(set(choices)) != len(choices):
                raise ReviewError("two options are the same", hint="make every option distinct")
            clean[name] = choices
        elif name == "correct_index":
            try:
                clean[name] = int(value)
            except (TypeError, ValueError):
                raise ReviewError(f"correct_index must be a number, not {value!r}") from None
    if kind.item_type == "mcq":
        choices = clean.get("choices", row.get("choices") or [])
        index = clean.get("correct_index", row.get("correct_index"))
        if index is None or not 0 <= index < len(choices):
            raise ReviewError(
                f"the correct option {index} is out of range",
                hint=f"choose an option between 1 and {len(choices)}",
            )
    return clean
