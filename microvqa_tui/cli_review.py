"""`microvqa review accept|reject|undo`: review decisions from the command line.

The same service as the TUI's Review screen (`microvqa_tui.services.review.Reviewer`), so the
decisions land in the same append-only `decisions` table, by the reviewer name of the
settings (`user`, `MICROVQA_USER`), and the graph step reads them as labels all the same.
Items are the ids given, or every item matching the filters (by default only unreviewed
ones, so a bulk accept never overturns an earlier rejection).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from microvqa_tui.cli import JsonFlag, app, console, emit_json, state
from microvqa_tui.errors import MicroVQAError
from microvqa_tui.vocabulary import ORIGIN_IMPORTED, REVIEWS, STATUSES

SHOWN_IDS = 20  # ids listed in the human-readable output


# Choices of the arguments, from the vocabulary (which loads nothing heavy). "generated" is
# the filter's name for every origin but imported.
Action = StrEnum("Action", ["accept", "reject", "undo"])
ItemType = StrEnum("ItemType", ["mcq", "qa"])
Status = StrEnum("Status", list(STATUSES))
Origin = StrEnum("Origin", [ORIGIN_IMPORTED, "generated"])
ReviewState = StrEnum("ReviewState", [*REVIEWS, "any"])


IdsArg = Annotated[list[str] | None, typer.Argument(help="Item ids (or select by filters).")]
TypeOpt = Annotated[ItemType, typer.Option("--type", help="What to review.")]
StatusOpt = Annotated[Status | None, typer.Option("--status", help="Pipeline status.")]
OriginOpt = Annotated[Origin | None, typer.Option("--origin", help="imported or generated.")]
TaskOpt = Annotated[str | None, typer.Option("--task", help="Task type (task_str).")]
BloomOpt = Annotated[int | None, typer.Option("--bloom", min=1, max=6, help="Bloom level.")]
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help="Reason code (or its start), e.g. graph_held_out.")
]
ReviewOpt = Annotated[
    ReviewState | None,
    typer.Option("--review", help="Review state of MCQs matched by filters (default unreviewed)."),
]
NoteOpt = Annotated[str, typer.Option("--note", help="Recorded with each decision.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would change; write nothing.")]


def _targets(
    store, item_type: str, ids: list[str] | None, filters: dict[str, Any], default_review: str
) -> tuple[list[str], str | None]:
    """(item ids, the filter used): the ids given, else every item matching the filters."""
    from microvqa_tui.services.review_filter import ItemFilter, matching_ids

    if ids and any(v is not None for v in filters.values()):
        raise MicroVQAError("give item ids or filters, not both")
    if ids:
        return list(dict.fromkeys(ids)), None
    review = filters.pop("review", None)
    if item_type == "mcq":
        review = default_review if review is None else review
        filters["review"] = None if review == ReviewState.any else review
    chosen = ItemFilter(
        **{k: (v.value if isinstance(v, StrEnum) else v) for k, v in filters.items()}
    )
    where = chosen.where(item_type)
    return matching_ids(store, item_type, where), where


def _open():
    from microvqa_tui.services.review import Reviewer
    from store import open_store

    settings = state.settings()
    store = open_store(settings.store)
    return store, Reviewer(store, settings.user)


def _decide(action: str, item_type: ItemType, ids, filters, note, dry_run, as_json) -> None:
    store, reviewer = _open()
    targets, where = _targets(store, item_type.value, ids, filters, ReviewState.unreviewed)
    if not targets:
        raise MicroVQAError(
            f"no {item_type.value} matches" + (f" ({where})" if where else ""),
            hint="check the filters with `microvqa stats`, or name ids",
        )
    result = reviewer.bulk(item_type.value, action, ids=targets, note=note, dry_run=dry_run)
    data = {
        **result.to_dict(),
        "item_type": item_type.value,
        "user": reviewer.user,
        "dry_run": dry_run,
        "matched": len(targets),
        "filter": where,
        "ids": [r.item_id for r in result.decisions],
    }
    if as_json:
        emit_json(data)
        return
    verb = {"accept": "accepted", "reject": "rejected"}[action]
    head = f"would be {verb}" if dry_run else verb
    console.print(
        f"{item_type.value}s {head}: {result.changed:,} of {len(targets):,} matched "
        f"({result.skipped:,} already {verb}), by {reviewer.user}"
        + ("" if dry_run else f"; undo with `microvqa review undo` (batch {result.batch_id})")
    )
    _show_ids(data["ids"])


def _show_ids(ids: list[str]) -> None:
    if ids:
        more = f" … and {len(ids) - SHOWN_IDS:,} more" if len(ids) > SHOWN_IDS else ""
        console.print("  " + ", ".join(ids[:SHOWN_IDS]) + more)


@app.command("review")
def review(
    action: Annotated[Action, typer.Argument(help="accept, reject, or undo.")],
    ids: IdsArg = None,
    item_type: TypeOpt = ItemType.mcq,
    status: StatusOpt = None,
    origin: OriginOpt = None,
    task: TaskOpt = None,
    bloom: BloomOpt = None,
    reason: ReasonOpt = None,
    review: ReviewOpt = None,
    note: NoteOpt = "",
    dry_run: DryRunOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Accept, reject or undo review decisions on the MCQs (or QAs) given by id or matching
    the filters. Accepted items are exported whatever their status; rejected ones never are;
    the graph learns from both. `undo` reverts your standing decision on each item given, or
    with neither ids nor filters your latest decision (a whole bulk action at once)."""
    filters = dict(
        status=status, origin=origin, task=task, bloom=bloom, reason=reason, review=review
    )
    if action == Action.undo:
        _undo(item_type, ids, filters, note, dry_run, as_json)
    else:
        _decide(action.value, item_type, ids, filters, note, dry_run, as_json)


def _undo(item_type: ItemType, ids, filters, note, dry_run, as_json) -> None:
    store, reviewer = _open()
    where = None
    if not ids and all(v is None for v in filters.values()):
        records = reviewer.last_undoable()
        if not dry_run:
            reviewer.undo(note)  # says so when there is nothing to undo
    else:
        targets, where = _targets(store, item_type.value, ids, filters, ReviewState.any)
        records = reviewer.undo_items(item_type.value, targets, note, dry_run=dry_run)
    undone_ids = [r.item_id for r in records]
    data = {
        "action": "undo",
        "item_type": item_type.value,
        "user": reviewer.user,
        "dry_run": dry_run,
        "changed": len(undone_ids),
        "filter": where,
        "ids": undone_ids,
        "decisions_reverted": [r.decision_id for r in records],
    }
    if as_json:
        emit_json(data)
        return
    head = "would be undone" if dry_run else "undone"
    console.print(f"decisions {head}: {len(undone_ids):,}, by {reviewer.user}")
    _show_ids(undone_ids)
