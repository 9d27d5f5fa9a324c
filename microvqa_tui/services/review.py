"""Human review of generated items: accept, reject, edit, undo, bulk and duplicate-group decisions.

UI-free: the TUI's review and duplicates screens call this, and so can a script or the CLI.

    reviewer = Reviewer(store, user=settings.user)
    reviewer.accept("mcq", mcq_id)
    reviewer.edit("mcq", mcq_id, {"question": "...", "choices": [...], "correct_index": 2})
    reviewer.undo()                      # reverts this user's latest decision (or bulk/group)
    reviewer.bulk("mcq", "reject", where="difficulty_tier = 'easy'")
    reviewer.decide_group(group_id, "keep_keeper")   # via the dedup step's decide_groups
    reviewer.undo_group()

Every decision is appended to the `decisions` table first (the audit trail: who, when, and
each changed field as `[before, after]`), then the item itself is updated (the MCQ's `review`
field, the edited fields, the duplicate group's `decision`). The decisions table is never
rewritten: an undo is a new decision of action `undo` that restores the `before` values.

`changes_json` maps field names to `[before, after]`. Keys starting with an underscore are
references, not fields: `_via` ("review": written here; `undo` only reverts these), `_batch`
(the id shared by the decisions of one bulk action, undone together), `_undoes` (on an undo,
the decision it reverts) and `_group` (the group of a reject_group's keeper rejections).

Item types:
- `mcq`: accept/reject set `mcqs.review`; edits may change question, choices, correct_index
  (correct_answer follows) and cot.
- `qa`: QAs have no review field; accept/reject are recorded as human labels only (the graph
  step reads them with `common.decisions.effective_labels`); edits may change question and
  answer.
- `dup_group`: `decide_group` (keep_keeper, keep_all, reject_group) applies the dedup step's
  own rules (`pipeline.dedup.decisions.decide_groups`: resolve / dismiss), which write their
  audit rows; `undo_group` puts the group back to pending.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from microvqa_tui.common.decisions import (
    BATCH_KEY,
    UNDOES_KEY,
    DecisionRecord,
    decision_history,
)
from microvqa_tui.errors import MicroVQAError
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import ACTION_ACCEPT as ACCEPT
from microvqa_tui.vocabulary import ACTION_EDIT as EDIT
from microvqa_tui.vocabulary import ACTION_REJECT as REJECT
from microvqa_tui.vocabulary import ACTION_UNDO as UNDO
from microvqa_tui.vocabulary import (
    DUP_PENDING,
    GROUP_ACTIONS,
    REVIEW_OF_ACTION,
    REVIEW_UNREVIEWED,
)
from microvqa_tui.vocabulary import GROUP_KEEP_ALL as KEEP_ALL
from microvqa_tui.vocabulary import GROUP_KEEP_KEEPER as KEEP_KEEPER
from microvqa_tui.vocabulary import GROUP_REJECT as REJECT_GROUP
from store import Store
from store.queries import in_list
from store.schema import arrow_schema, utcnow

# The dedup step's action for each group action (reject_group adds the keeper's rejection).
DEDUP_ACTION = {KEEP_KEEPER: "resolve", KEEP_ALL: "dismiss", REJECT_GROUP: "resolve"}

GROUP_KEY = "_group"  # on the keeper rejections of a reject_group: the group id
SOURCE_KEY, SOURCE = "_via", "review"  # marks decisions written here (undo only takes these)
IN_CHUNK = 2000  # ids per `IN (...)` filter when updating many rows


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


class Reviewer:
    """Review operations on one store for one user. Not thread-safe: call from one thread
    at a time (the TUI runs them one after the other in a worker)."""

    def __init__(self, store: Store, user: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        if not user:
            raise ReviewError("no reviewer name", hint="set `user` in the settings")
        self.store = store
        self.user = user
        self.clock = clock

    # ------------------------------------------------------------------ single items
    def accept(self, item_type: str, item_id: str, note: str = "") -> DecisionRecord:
        return self._label(item_type, item_id, ACCEPT, note)

    def reject(self, item_type: str, item_id: str, note: str = "") -> DecisionRecord:
        return self._label(item_type, item_id, REJECT, note)

    def decide(self, item_type: str, item_id: str, action: str, note: str = "") -> DecisionRecord:
        if action not in REVIEW_OF_ACTION:
            raise ReviewError(f"unknown review action {action!r}", hint="use accept or reject")
        return self._label(item_type, item_id, action, note)

    def _label(self, item_type: str, item_id: str, action: str, note: str) -> DecisionRecord:
        kind = item_kind(item_type)
        changes: dict[str, Any] = {}
        if kind.review_field:
            row = self._row(kind, item_id, [kind.review_field])
            before = row[kind.review_field] or REVIEW_UNREVIEWED
            changes[kind.review_field] = [before, REVIEW_OF_ACTION[action]]
        else:
            self._row(kind, item_id, [kind.key])
        record = self._record(kind.item_type, item_id, action, changes, note)
        self._write([record])
        if kind.review_field:
            self._set(kind, [item_id], kind.review_field, REVIEW_OF_ACTION[action])
        return record

    def edit(
        self, item_type: str, item_id: str, values: dict[str, Any], note: str = ""
    ) -> DecisionRecord | None:
        """Change an item's text fields; returns None when nothing actually changed."""
        kind = item_kind(item_type)
        unknown = sorted(set(values) - set(kind.editable))
        if unknown:
            raise ReviewError(
                f"cannot edit {', '.join(unknown)} of a {item_type}",
                hint=f"editable fields: {', '.join(kind.editable)}",
            )
        row = self._row(kind, item_id, None)
        new = {**row, **_clean_edit(kind, row, values)}
        changed = [name for name in kind.editable if new.get(name) != row.get(name)]
        if kind.item_type == "mcq" and changed:
            new["correct_answer"] = new["choices"][new["correct_index"]]
            if new["correct_answer"] != row.get("correct_answer"):
                changed.append("correct_answer")
        if not changed:
            return None
        changes = {name: [row.get(name), new[name]] for name in changed}
        record = self._record(kind.item_type, item_id, EDIT, changes, note)
        self._write([record])
        # only the edited columns: a step writing its own columns meanwhile is not reverted
        self.store.update_columns(kind.table, [new], changed)
        return record

    # ------------------------------------------------------------------ bulk
    def bulk(
        self,
        item_type: str,
        action: str,
        *,
        where: str | None = None,
        ids: Iterable[str] | None = None,
        note: str = "",
        tags: dict[str, str] | None = None,
        progress: ProgressReporter | None = None,
        cancel: CancelToken | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Accept or reject every item matching `where` (a LanceDB filter) or listed in `ids`.

        Items already in the requested state are skipped (no decision). All decisions share
        one batch id, so `undo` reverts the whole bulk action at once. Cancellation is only
        honoured before anything is written: a bulk action is all or nothing. `dry_run`
        returns what would be decided (the records, unwritten) and writes nothing.
        """
        kind = item_kind(item_type)
        if action not in REVIEW_OF_ACTION:
            raise ReviewError(f"unknown bulk action {action!r}", hint="use accept or reject")
        progress = progress or NullProgress()
        target = REVIEW_OF_ACTION[action]
        rows = self._select(kind, where, ids)
        if cancel is not None:
            cancel.check()
        batch = new_id()
        changed, skipped = [], 0
        for row in rows:
            if kind.review_field:
                before = row[kind.review_field] or REVIEW_UNREVIEWED
                if before == target:
                    skipped += 1
                    continue
                changed.append((row[kind.key], {kind.review_field: [before, target]}))
            else:
                changed.append((row[kind.key], {}))
        progress.start(f"bulk {action}", len(changed))
        records = [
            self._record(
                kind.item_type, item_id, action, {**fields, **(tags or {}), BATCH_KEY: batch}, note
            )
            for item_id, fields in changed
        ]
        if dry_run:
            return BulkResult("", action, len(changed), skipped, records)
        self._write(records)
        if kind.review_field:
            self._set(kind, [item_id for item_id, _ in changed], kind.review_field, target)
        progress.advance(len(changed))
        return BulkResult(batch, action, len(changed), skipped, records)

    def _select(self, kind: ItemKind, where: str | None, ids: Iterable[str] | None):
        columns = [kind.key] + ([kind.review_field] if kind.review_field else [])
        if ids is not None:
            return self.store.get_many(kind.table, list(dict.fromkeys(ids)), columns)
        tbl = self.store.table(kind.table)
        total = tbl.count_rows(where) if where else tbl.count_rows()
        if total == 0:
            return []
        query = tbl.search()
        if where:
            query = query.where(where)
        return query.select(columns).limit(total).to_arrow().to_pylist()

    # ------------------------------------------------------------------ duplicate groups
    def decide_group(self, group_id: str, action: str, note: str = "") -> GroupResult:
        """Decide a near-duplicate group with the dedup step's own decision rules
        (`microvqa_tui.pipeline.dedup.decisions`, so the CLI, the exports and this agree):

        - keep_keeper → `resolve`: the keeper stays, the other members are rejected (question
          groups: their MCQs get review = rejected; image/caption groups: the exports leave
          the rejected members out);
        - keep_all → `dismiss`: not duplicates;
        - reject_group → `resolve`, then the keeper's MCQs are rejected too (a review batch
          tagged with the group), so nothing of the group is kept.

        `undo_group` reverts the latest group decision of this user, both parts at once.
        """
        if action not in GROUP_ACTIONS:
            raise ReviewError(
                f"unknown group action {action!r}", hint=f"use one of {', '.join(GROUP_ACTIONS)}"
            )
        from microvqa_tui.pipeline.dedup import decisions  # numpy: loaded when first used

        group = self.store.get("dup_groups", group_id, ["group_id", "kind", "keeper_id"])
        if group is None:
            raise ReviewError(f"no duplicate group {group_id}", hint="re-run dedup, then reload")
        outcome = decisions.decide_groups(
            self.store, [group_id], DEDUP_ACTION[action], user=self.user, note=note
        )
        result = GroupResult(group_id, action, outcome)
        if action == REJECT_GROUP:
            mcq_ids = [r["mcq_id"] for r in self._member_mcqs(group["kind"], [group["keeper_id"]])]
            if mcq_ids:
                result.keeper_rejection = self.bulk(
                    "mcq",
                    REJECT,
                    ids=mcq_ids,
                    note=note or f"duplicate group {group_id} rejected as a whole",
                    tags={GROUP_KEY: group_id},
                )
        return result

    def undo_group(self, group_id: str | None = None) -> GroupResult:
        """Put a group back to pending (default: the group this user decided last), restoring
        the MCQ reviews its decision changed."""
        from microvqa_tui.pipeline.dedup import decisions  # numpy: loaded when first used

        if group_id is None:
            rows = [
                r
                for r in decision_history(self.store, user=self.user, item_type="dup_group")
                if r.action != UNDO
            ]
            for record in reversed(rows):
                group = self.store.get("dup_groups", record.item_id, ["decision"])
                if group is not None and group["decision"] != DUP_PENDING:
                    group_id = record.item_id
                    break
            if group_id is None:
                raise ReviewError(
                    "no group decision to undo", hint=f"none by {self.user} is standing"
                )
        outcome = decisions.decide_groups(self.store, [group_id], "undo", user=self.user)
        result = GroupResult(group_id, UNDO, outcome)
        live = self.last_undoable()
        if live and all(r.changes.get(GROUP_KEY) == group_id for r in live):
            result.keeper_rejection = self._undo_records(live, note="")
        return result

    def _member_mcqs(self, group_kind: str, member_ids: list[str]) -> list[dict[str, Any]]:
        """The MCQs that stand for the given group members."""
        if not member_ids:
            return []
        columns = ["mcq_id", "review"]
        if group_kind == "question":
            return self.store.get_many("mcqs", member_ids, columns)
        if group_kind == "image":
            return self._rows_where("mcqs", "figure_id", member_ids, columns)
        if group_kind == "caption":
            qas = self._rows_where("qas", "caption_id", member_ids, ["qa_id"])
            return self._rows_where("mcqs", "qa_id", [q["qa_id"] for q in qas], columns)
        return []

    def _rows_where(self, table: str, column: str, values: list[str], columns: list[str]):
        result: list[dict[str, Any]] = []
        for start in range(0, len(values), IN_CHUNK):
            where = in_list(column, values[start : start + IN_CHUNK])
            result.extend(self.store.rows(table, where, columns))
        return result

    # ------------------------------------------------------------------ undo
    def last_undoable(self) -> list[DecisionRecord]:
        """The decisions the next `undo` would revert (one decision, or one whole batch).
        Only decisions written by this module count: duplicate-group decisions have their
        own undo (`undo_group`)."""
        records = [r for r in self.history(user=self.user) if r.changes.get(SOURCE_KEY) == SOURCE]
        undone = {r.undoes for r in records if r.action == UNDO}
        live = [r for r in records if r.action != UNDO and r.decision_id not in undone]
        if not live:
            return []
        latest = max(live, key=lambda r: r.at)
        if latest.batch:
            return [r for r in live if r.batch == latest.batch]
        return [latest]

    def standing(self, item_type: str, ids: Iterable[str]) -> list[DecisionRecord]:
        """This user's latest decision on each of `ids` that is not undone yet (what
        `undo_items` would revert); items without one are left out."""
        wanted = set(ids)
        records = [
            r
            for r in self.history(user=self.user, item_type=item_type)
            if r.changes.get(SOURCE_KEY) == SOURCE and r.item_id in wanted
        ]
        undone = {r.undoes for r in records if r.action == UNDO}
        latest: dict[str, DecisionRecord] = {}
        for record in records:  # oldest first: the last live one wins
            if record.action != UNDO and record.decision_id not in undone:
                latest[record.item_id] = record
        return [latest[i] for i in sorted(latest)]

    def undo_items(
        self, item_type: str, ids: Iterable[str], note: str = "", *, dry_run: bool = False
    ) -> list[DecisionRecord]:
        """Revert this user's standing decision on each listed item (one decision per item,
        even when it was part of a bulk action); the undos share one batch id. Returns the
        decisions reverted (dry run: that would be) — empty when none of the items has one."""
        item_kind(item_type)
        targets = self.standing(item_type, ids)
        if dry_run or not targets:
            return targets
        self._undo_records(targets, note)
        return targets

    def undo(self, note: str = "") -> list[DecisionRecord]:
        """Revert this user's latest decision that is not undone yet (a whole bulk action at
        once) and record the undo. Raises ReviewError when there is nothing left."""
        targets = self.last_undoable()
        if not targets:
            raise ReviewError("nothing to undo", hint=f"no decisions by {self.user} left to revert")
        return self._undo_records(targets, note)

    def _undo_records(self, targets: list[DecisionRecord], note: str) -> list[DecisionRecord]:
        at = self.clock()
        batch = new_id() if len(targets) > 1 else None
        undo_records = []
        for target in targets:
            changes: dict[str, Any] = {
                name: [after, before] for name, (before, after) in target.fields.items()
            }
            changes[UNDOES_KEY] = target.decision_id
            if batch:
                changes[BATCH_KEY] = batch
            undo_records.append(
                self._record(target.item_type, target.item_id, UNDO, changes, note, at=at)
            )
        self._write(undo_records)
        for target in targets:
            self._revert(target)
        return undo_records

    def _revert(self, target: DecisionRecord) -> None:
        before = {name: pair[0] for name, pair in target.fields.items()}
        if not before:
            return
        kind = item_kind(target.item_type)
        if kind.review_field in before:
            self._set(kind, [target.item_id], kind.review_field, before.pop(kind.review_field))
        if before:
            self.store.update_columns(
                kind.table, [{kind.key: target.item_id, **before}], list(before)
            )

    # ------------------------------------------------------------------ reads
    def history(
        self,
        *,
        user: str | None = None,
        item_type: str | None = None,
        item_id: str | None = None,
    ) -> list[DecisionRecord]:
        """Decisions, oldest first, optionally for one user and/or one item."""
        return decision_history(self.store, user=user, item_type=item_type, item_id=item_id)

    # ------------------------------------------------------------------ helpers
    def _row(self, kind: ItemKind, item_id: str, columns: list[str] | None) -> dict[str, Any]:
        row = self.store.get(kind.table, item_id, columns)
        if row is None:
            raise ReviewError(
                f"no {kind.item_type} {item_id}", hint="it may have been removed; reload"
            )
        return row

    def _record(
        self,
        item_type: str,
        item_id: str,
        action: str,
        changes: dict[str, Any],
        note: str,
        *,
        at: datetime | None = None,
    ) -> DecisionRecord:
        return DecisionRecord(
            decision_id=new_id(),
            item_type=item_type,
            item_id=item_id,
            action=action,
            changes={**changes, SOURCE_KEY: SOURCE},
            user=self.user,
            at=at or self.clock(),
            note=note,
        )

    def _write(self, records: list[DecisionRecord]) -> None:
        if not records:
            return
        columns: dict[str, list[Any]] = {name: [] for name in arrow_schema("decisions").names}
        for record in records:
            for name, value in record.to_row().items():
                columns[name].append(value)
        self.store.append("decisions", pa.table(columns, schema=arrow_schema("decisions")))

    def _set(self, kind: ItemKind, ids: list[str], column: str | None, value: Any) -> None:
        if not ids or column is None:
            return
        for start in range(0, len(ids), IN_CHUNK):
            where = in_list(kind.key, ids[start : start + IN_CHUNK])
            self.store.update_where(kind.table, where, {column: value})


def _clean_edit(kind: ItemKind, row: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
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
