"""The reads behind the Duplicates screen: groups from `dup_groups` (written by `microvqa dedup`)
and, per group, its members with image and text. No Textual here.

When the store has no duplicate groups (dedup not run, or a build without the table),
`groups_page` returns None and the screen shows "run dedup first".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import StoreError
from microvqa_tui.services.detail import load_image
from microvqa_tui.services.views import quote
from microvqa_tui.vocabulary import DUP_PENDING

if TYPE_CHECKING:
    from store import Store

GROUP_COLUMNS = [
    "group_id",
    "kind",
    "member_ids",
    "similarities",
    "size",
    "method",
    "threshold",
    "max_similarity",
    "keeper_id",
    "keeper_reason",
    "decision",
    "decided_by",
]
MEMBER_IMAGE_PX = 320


@dataclass
class GroupsPage:
    rows: list[dict[str, Any]]
    total: int
    pending: int
    all_groups: int


def groups_page(
    store: Store, *, pending_only: bool = True, kind: str | None = None, limit: int = 500
) -> GroupsPage | None:
    """Groups, pending first then by size; None when the store has no groups at all.

    The groups table is small next to the items (a group per duplicate cluster), so one page
    of up to `limit` groups is read; sorting is by LanceDB (`order_by`)."""
    try:
        all_groups = store.count("dup_groups", "decision != 'superseded'")
    except StoreError:
        return None
    if all_groups == 0:
        return None
    clauses = ["decision != 'superseded'"]
    if pending_only:
        clauses.append(f"decision = {quote(DUP_PENDING)}")
    if kind:
        clauses.append(f"kind = {quote(kind)}")
    where = " AND ".join(clauses)
    total = store.count("dup_groups", where)
    pending = store.count("dup_groups", f"decision = {quote(DUP_PENDING)}")
    rows = store.page(
        "dup_groups",
        where=where,
        columns=GROUP_COLUMNS,
        order_by=["-size", "-max_similarity", "group_id"],
        limit=limit,
    )
    return GroupsPage(rows, total, pending, all_groups)


@dataclass
class Member:
    member_id: str
    keeper: bool
    similarity: float | None
    title: str
    text: str
    figure_id: str = ""
    review: str = ""
    image: Any = None
    image_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def group_members(store: Store, group: dict[str, Any], *, with_images: bool = True) -> list[Member]:
    """The members of a group with what identifies them: image and caption (image and caption
    groups), question and options (question groups)."""
    members: list[Member] = []
    sims = list(group.get("similarities") or [])
    kind = group["kind"]
    ids = list(group["member_ids"])
    if kind == "question":
        rows = {
            r["mcq_id"]: r
            for r in store.get_many(
                "mcqs",
                ids,
                ["mcq_id", "figure_id", "question", "choices", "correct_index", "review", "status"],
            )
        }
    elif kind == "caption":
        rows = {
            r["caption_id"]: r
            for r in store.get_many("captions", ids, ["caption_id", "figure_id", "text"])
        }
    else:
        rows = {
            r["figure_id"]: r
            for r in store.get_many(
                "figures",
                ids,
                ["figure_id", "original_id", "width", "height", "format", "article_id"],
            )
        }
    for index, member_id in enumerate(ids):
        row = rows.get(member_id)
        member = Member(
            member_id=member_id,
            keeper=member_id == group["keeper_id"],
            similarity=sims[index] if index < len(sims) else None,
            title=member_id[:12] if not member_id.startswith("ext:") else "external",
            text=""
            if row is not None
            else (
                f"in the reference store ({member_id[4:16]})"
                if member_id.startswith("ext:")
                else "(not in this store)"
            ),
        )
        if row is not None:
            if kind == "question":
                member.figure_id = row["figure_id"]
                member.review = row.get("review") or ""
                choices = "\n".join(
                    f"{'ABCDEFGH'[i]}. {c}" for i, c in enumerate(row["choices"][:8])
                )
                member.text = f"{row['question']}\n{choices}"
            elif kind == "caption":
                member.figure_id = row["figure_id"]
                member.text = row["text"]
            else:
                member.figure_id = member_id
                member.title = row.get("original_id") or member.title
                member.extra = row
                caption = store.page(
                    "captions", where=f"figure_id = {quote(member_id)}", columns=["text"], limit=1
                )
                dims = f"{row['width']}×{row['height']} {row['format']}"
                article = f" · {row['article_id']}" if row.get("article_id") else ""
                member.text = dims + article + ("\n" + caption[0]["text"] if caption else "")
        if with_images and member.figure_id:
            member.image, member.image_note = load_image(store, member.figure_id, MEMBER_IMAGE_PX)
        members.append(member)
    return members
