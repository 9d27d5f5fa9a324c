"""Which items a bulk review takes: filters on status, origin, task, Bloom level, reason.

Shared by `microvqa review` and anything else that selects items for `Reviewer.bulk` /
`Reviewer.undo_items`; UI-free like `microvqa_tui.services.review`.
"""

from __future__ import annotations

from dataclasses import dataclass

from microvqa_tui.services.review import ReviewError, item_kind
from store import Store
from store.queries import quote


@dataclass(frozen=True)
class ItemFilter:
    """Which items a bulk review takes (the CLI's --status/--origin/--task/--bloom/--reason/
    --review); each unset field matches everything."""

    status: str | None = None  # pending | kept | held_out | flagged
    origin: str | None = None  # imported | generated (anything not imported)
    task: str | None = None
    bloom: int | None = None
    reason: str | None = None  # the reason's code (`code: details`), or its start
    review: str | None = None  # unreviewed | accepted | rejected (MCQs only)

    def where(self, item_type: str) -> str | None:
        """The LanceDB filter on the item type's table; None when nothing is set."""
        clauses = []
        if self.status:
            clauses.append(f"status = {quote(self.status)}")
        if self.origin == "generated":
            clauses.append("origin != 'imported'")
        elif self.origin:
            clauses.append(f"origin = {quote(self.origin)}")
        if self.task:
            column = "task_str" if item_type == "mcq" else "task_type"
            clauses.append(f"{column} = {quote(self.task)}")
        if self.reason:
            clauses.append(f"reason LIKE {quote(self.reason + '%')}")
        if item_type == "mcq":
            if self.bloom is not None:
                clauses.append(f"bloom_level = {int(self.bloom)}")
            if self.review:
                clauses.append(f"review = {quote(self.review)}")
        elif self.bloom is not None or self.review:
            raise ReviewError("QAs have no Bloom level or review field", hint="filter MCQs")
        return " AND ".join(clauses) or None


def matching_ids(store: Store, item_type: str, where: str | None) -> list[str]:
    """Ids of the items of a type matching `where` (every item when None), sorted."""
    return sorted(store.ids(item_kind(item_type).table, where))
