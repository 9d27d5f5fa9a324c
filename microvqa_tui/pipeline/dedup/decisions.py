"""Reviewing duplicate groups at scale: pages of groups, bulk decisions, explicit policies.

Decisions (each recorded in the append-only `decisions` table, `item_type="dup_group"`):

- `resolve`: keep the keeper (optionally another member named as keeper) and reject the
  others. For question groups the other MCQs get `review = rejected` (each with its own
  `mcq` decision, so the review queue and the audit trail agree). For image and caption groups
  nothing else is rewritten: the rejected members are read from the resolved groups by
  `rejected_members` and left out of splits and exports.
- `dismiss`: the members are not duplicates; later dedup runs never link them again.
- `undo`: back to pending; MCQ reviews changed by the resolve are restored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.dedup.items import EXTERNAL_PREFIX
from microvqa_tui.vocabulary import DUP_DISMISSED, DUP_PENDING, DUP_RESOLVED, REVIEW_REJECTED
from store import Store, text_id
from store.queries import in_list, quote
from store.schema import utcnow

ACTIONS = ("resolve", "dismiss", "undo")
_DECISION_ACTION = {"resolve": "accept", "dismiss": "reject", "undo": "undo"}


def _where(
    kind: str | None, decision: str | None, min_similarity: float | None, min_size: int | None
) -> str | None:
    parts = []
    if kind and kind != "all":
        parts.append(f"kind = {quote(kind)}")
    if decision and decision != "all":
        parts.append(f"decision = {quote(decision)}")
    if min_similarity is not None:
        parts.append(f"min_similarity >= {float(min_similarity)}")
    if min_size is not None:
        parts.append(f"size >= {int(min_size)}")
    return " AND ".join(parts) or None


def count_groups(
    store: Store, *, kind: str | None = None, decision: str | None = DUP_PENDING
) -> int:
    return store.count("dup_groups", _where(kind, decision, None, None))


def list_groups(
    store: Store,
    *,
    kind: str | None = None,
    decision: str | None = DUP_PENDING,
    min_similarity: float | None = None,
    min_size: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """One page of groups (filter pushed down to LanceDB; largest, then strongest first
    within the page: LanceDB scans have no global order, so pages follow storage order)."""
    rows = store.page(
        "dup_groups",
        where=_where(kind, decision, min_similarity, min_size),
        columns=[
            "group_id",
            "kind",
            "member_ids",
            "similarities",
            "size",
            "method",
            "max_similarity",
            "min_similarity",
            "keeper_id",
            "keeper_reason",
            "decision",
            "decided_by",
            "external_ids",
            "run_id",
        ],
        offset=offset,
        limit=limit,
    )
    rows.sort(key=lambda r: (-r["size"], -r["max_similarity"], r["group_id"]))
    return rows


def select_group_ids(
    store: Store,
    *,
    kind: str | None = None,
    decision: str | None = DUP_PENDING,
    min_similarity: float | None = None,
    min_size: int | None = None,
) -> list[str]:
    return sorted(store.ids("dup_groups", _where(kind, decision, min_similarity, min_size)))


OUTCOMES = ("resolved", "dismissed", "undone", "unchanged", "mcqs_rejected", "mcqs_restored")


@dataclass
class _Decisions:
    """What one `decide_groups` call writes besides the groups: audit rows and counts."""

    store: Store
    user: str
    now: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def restore_if_resolved(self, group: dict[str, Any], before: str) -> None:
        if before == DUP_RESOLVED:
            _restore_mcqs(self.store, group, self.now, self.user, self.rows, self.outcome)


def decide_groups(
    store: Store,
    group_ids: Iterable[str],
    action: str,
    *,
    user: str,
    keeper_id: str | None = None,
    note: str = "",
) -> dict[str, Any]:
    """Apply one decision to many groups at once. Returns counts per outcome."""
    if action not in ACTIONS:
        raise PipelineError(f"unknown dedup action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
    ids = list(dict.fromkeys(group_ids))
    groups = _groups_to_decide(store, ids, keeper_id)
    out = _Decisions(store, user, utcnow())
    group_rows = []
    for group in sorted(groups, key=lambda g: g["group_id"]):
        before = group["decision"]
        changes = _apply(out, group, action, keeper_id)
        if changes is None:
            out.outcome["unchanged"] += 1
            continue
        changes = {"decision": [before, group["decision"]], **changes}
        group["decided_by"] = user
        group["decided_at"] = out.now
        group_rows.append(group)
        out.rows.append(
            _decision(
                "dup_group",
                group["group_id"],
                _DECISION_ACTION[action],
                user,
                out.now,
                changes,
                note,
            )
        )
    if group_rows:
        store.upsert("dup_groups", group_rows)
    if out.rows:
        store.append("decisions", out.rows)
    return {**out.outcome, "groups": len(ids)}


def _groups_to_decide(store: Store, ids: list[str], keeper_id: str | None) -> list[dict[str, Any]]:
    groups = store.get_many("dup_groups", ids)
    found = {g["group_id"] for g in groups}
    missing = [g for g in ids if g not in found]
    if missing:
        raise PipelineError(
            f"no duplicate group {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if keeper_id is not None and len(groups) != 1:
        raise PipelineError("a keeper can be named for one group at a time")
    return groups


def _apply(
    out: _Decisions, group: dict[str, Any], action: str, keeper_id: str | None
) -> dict[str, Any] | None:
    """Change `group` (in place) by `action`; returns the recorded changes besides the
    decision, or None when the group already is in that state."""
    before = group["decision"]
    if action == "resolve":
        return _resolve(out, group, keeper_id or group["keeper_id"])
    target, counter = (
        (DUP_DISMISSED, "dismissed") if action == "dismiss" else (DUP_PENDING, "undone")
    )
    if before == target:
        return None
    out.restore_if_resolved(group, before)
    group["decision"] = target
    out.outcome[counter] += 1
    return {}


def _resolve(out: _Decisions, group: dict[str, Any], keeper: str) -> dict[str, Any] | None:
    before = group["decision"]
    if keeper not in group["member_ids"]:
        raise PipelineError(f"{keeper!r} is not a member of group {group['group_id']}")
    if before == DUP_RESOLVED and keeper == group["keeper_id"]:
        return None
    out.restore_if_resolved(group, before)
    changes: dict[str, Any] = {"keeper_id": [group["keeper_id"], keeper]}
    group["keeper_id"] = keeper
    group["decision"] = DUP_RESOLVED
    if group["kind"] == "question":
        changes["mcqs"] = _reject_mcqs(out.store, group, out.now, out.user, out.rows)
        out.outcome["mcqs_rejected"] += len(changes["mcqs"])
    else:
        # Images and captions are not rewritten: each rejected member gets an audit row and
        # `rejected_members` leaves it out of splits and exports.
        item_type = "caption" if group["kind"] == "caption" else "figure"
        for member in _rejected_of(group):
            out.rows.append(
                _decision(
                    item_type,
                    member,
                    "reject",
                    out.user,
                    out.now,
                    {"duplicate_of": keeper, "group_id": group["group_id"]},
                    f"near-duplicate of {keeper} (group {group['group_id']})",
                )
            )
    out.outcome["resolved"] += 1
    return changes


def apply_policy(
    store: Store,
    *,
    kind: str | None,
    min_similarity: float,
    user: str,
    min_size: int | None = None,
) -> dict[str, Any]:
    """Resolve every pending group (of `kind`) whose weakest link is ≥ `min_similarity`:
    the explicit, recorded policy for bulk decisions (e.g. exact copies at 0.99)."""
    ids = select_group_ids(
        store, kind=kind, decision=DUP_PENDING, min_similarity=min_similarity, min_size=min_size
    )
    note = f"policy: resolve {kind or 'all'} groups with min_similarity >= {min_similarity}"
    result = (
        decide_groups(store, ids, "resolve", user=f"policy:{user}", note=note)
        if ids
        else {"groups": 0, "resolved": 0}
    )
    result["policy"] = note
    return result


def _rejected_of(group: dict[str, Any]) -> list[str]:
    """Local members other than the keeper (external ones are never touched)."""
    return [
        m
        for m in group["member_ids"]
        if m != group["keeper_id"] and not m.startswith(EXTERNAL_PREFIX)
    ]


def _decision(
    item_type: str, item_id: str, action: str, user: str, now, changes: dict[str, Any], note: str
) -> dict[str, Any]:
    return {
        "decision_id": text_id(
            "decision",
            item_type,
            item_id,
            action,
            user,
            now.isoformat(),
            json.dumps(changes, sort_keys=True),
        ),
        "item_type": item_type,
        "item_id": item_id,
        "action": action,
        "changes_json": json.dumps(changes, default=str),
        "user": user,
        "at": now,
        "note": note,
    }


def _reject_mcqs(
    store: Store, group: dict[str, Any], now, user: str, decision_rows: list
) -> dict[str, list[str]]:
    members = _rejected_of(group)
    if not members:
        return {}
    current = {
        m["mcq_id"]: m
        for m in store.get_many("mcqs", members, columns=["mcq_id", "review", "reason"])
    }
    changed: dict[str, list[str]] = {}
    reason = f"duplicate of {group['keeper_id']} (group {group['group_id']})"
    to_change = [m for m in members if m in current and current[m]["review"] != REVIEW_REJECTED]
    for start in range(0, len(to_change), 500):
        chunk = to_change[start : start + 500]
        store.update_where(
            "mcqs", in_list("mcq_id", chunk), {"review": REVIEW_REJECTED, "reason": reason}
        )
    for m in to_change:
        changed[m] = [current[m]["review"], REVIEW_REJECTED]
        decision_rows.append(
            _decision(
                "mcq",
                m,
                "reject",
                user,
                now,
                {"review": changed[m], "reason": [current[m]["reason"], reason]},
                reason,
            )
        )
    return changed


def _restore_mcqs(
    store: Store, group: dict[str, Any], now, user: str, decision_rows: list, outcome: dict
) -> None:
    """Undo the MCQ rejections of the latest resolve of a question group."""
    if group["kind"] != "question":
        return
    rows = store.rows(
        "decisions",
        columns=["item_id", "action", "changes_json", "at"],
        where=f"item_type = 'dup_group' AND item_id = {quote(group['group_id'])} AND action = 'accept'",
    )
    if not rows:
        return
    latest = max(rows, key=lambda r: r["at"])
    changed: dict[str, list[str]] = json.loads(latest["changes_json"]).get("mcqs", {})
    for mcq_id, (before, _after) in changed.items():
        store.update_where("mcqs", f"mcq_id = {quote(mcq_id)}", {"review": before, "reason": ""})
        decision_rows.append(
            _decision(
                "mcq",
                mcq_id,
                "undo",
                user,
                now,
                {"review": [REVIEW_REJECTED, before]},
                f"undo duplicate rejection (group {group['group_id']})",
            )
        )
        outcome["mcqs_restored"] += 1


def rejected_members(store: Store) -> dict[str, set[str]]:
    """Per kind, the local members that resolved groups rejected (everything but the keeper)."""
    out: dict[str, set[str]] = {"image": set(), "caption": set(), "question": set()}
    if store.count("dup_groups") == 0:
        return out
    for group in store.rows(
        "dup_groups",
        columns=["kind", "member_ids", "keeper_id"],
        where=f"decision = {quote(DUP_RESOLVED)}",
    ):
        out.setdefault(group["kind"], set()).update(_rejected_of(group))
    return out


def group_links(store: Store, *, include_pending: bool = True) -> dict[str, list[list[str]]]:
    """Per kind, the local member lists of every group that should stay in one split:
    pending and resolved groups (dismissed and superseded ones are not duplicates)."""
    out: dict[str, list[list[str]]] = {"image": [], "caption": [], "question": []}
    if store.count("dup_groups") == 0:
        return out
    decisions = [DUP_RESOLVED] + ([DUP_PENDING] if include_pending else [])
    where = f"decision IN ({', '.join(quote(d) for d in decisions)})"
    for group in store.rows("dup_groups", where=where, columns=["kind", "member_ids"]):
        members = [m for m in group["member_ids"] if not m.startswith(EXTERNAL_PREFIX)]
        if len(members) >= 2:
            out.setdefault(group["kind"], []).append(members)
    return out
