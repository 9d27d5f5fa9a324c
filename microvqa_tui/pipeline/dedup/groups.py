"""From links to `dup_groups` rows: union-find over the links (minus dismissed pairs), a
keeper per group, each member's similarity to it, and superseding stale pending groups."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from microvqa_tui.pipeline.dedup import imagehash
from microvqa_tui.pipeline.dedup.items import EXTERNAL_PREFIX, Items, Links
from microvqa_tui.pipeline.dedup.keeper import choose_keeper
from microvqa_tui.pipeline.dedup.unionfind import UnionFind
from microvqa_tui.vocabulary import DUP_DISMISSED, DUP_PENDING, DUP_SUPERSEDED
from store import Store, text_id
from store.queries import in_list, quote

THRESHOLD_OF = {"clip": "clip", "phash": "hash", "minilm": "text", "tfidf": "tfidf"}
MAX_STORED_LINKS = 500  # links_json keeps the first ones: enough to show why a group formed


@dataclass
class Found:
    """What one kind's search produced: the links, and what member similarities use."""

    links: Links
    vectors: np.ndarray | None = None  # text vectors (unit rows)
    hashes: imagehash.HashTable | None = None
    clip: tuple[np.ndarray, np.ndarray] | None = None  # (vectors, has_vector), local only

    def similarity(self, kind: str, keeper: int, member: int) -> float:
        if keeper == member:
            return 1.0
        if kind != "image":
            return (
                float(self.vectors[keeper] @ self.vectors[member])
                if self.vectors is not None
                else 0.0
            )
        best = (
            imagehash.pair_similarity(self.hashes, keeper, member)
            if self.hashes is not None
            else 0.0
        )
        if self.clip is not None:
            vec, have = self.clip
            if have[keeper] and have[member]:
                a, b = vec[keeper], vec[member]
                denom = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0
                best = max(best, float(a @ b) / denom)
        return best


def existing_groups(store: Store, kind: str) -> list[dict[str, Any]]:
    columns = ["group_id", "member_ids", "external_ids", "decision"]
    return store.rows("dup_groups", where=f"kind = {quote(kind)}", columns=columns)


def dismissed_pairs(existing: list[dict[str, Any]]) -> set[frozenset[str]]:
    """Member pairs someone declared not duplicates (never linked again)."""
    pairs: set[frozenset[str]] = set()
    for group in existing:
        if group["decision"] != DUP_DISMISSED:
            continue
        members = list(group["member_ids"])
        for i, x in enumerate(members):
            for y in members[i + 1 :]:
                pairs.add(frozenset((x, y)))
    return pairs


def group_id_for(kind: str, members: list[str]) -> str:
    return text_id("dup", kind, *sorted(members))


def join_links(
    items: Items, links: Links, existing: list[dict[str, Any]], seed_open: bool
) -> tuple[UnionFind, list[int]]:
    """Union the links not dismissed before; returns the union-find and the links used.
    `seed_open`: incremental runs only see new-vs-all links, so the groups already open are
    joined too."""
    dismissed = dismissed_pairs(existing)
    uf = UnionFind(len(items.ids))
    used = []
    for i, (a, b) in enumerate(zip(links.a, links.b, strict=True)):
        if frozenset((items.ids[a], items.ids[b])) in dismissed:
            continue
        uf.union(a, b)
        used.append(i)
    if seed_open:
        position = {item: i for i, item in enumerate(items.ids)}
        for group in existing:
            if group["decision"] in (DUP_DISMISSED, DUP_SUPERSEDED):
                continue
            members = [position[m] for m in group["member_ids"] if m in position]
            for m in members[1:]:
                uf.union(members[0], m)
    return uf, used


@dataclass
class GroupWriter:
    """Turns components into `dup_groups` rows for one kind and run."""

    kind: str
    items: Items
    found: Found
    thresholds: dict[str, float]
    qualities: dict[str, Any]
    run_id: str
    now: datetime

    def row(self, comp: list[int], comp_links: list[int]) -> dict[str, Any]:
        links, ids = self.found.links, self.items.ids
        member_ids = [ids[i] for i in comp]
        keeper_pos, reason = choose_keeper(member_ids, self.qualities, EXTERNAL_PREFIX)
        keeper = comp[keeper_pos]
        sims = [round(self.found.similarity(self.kind, keeper, m), 4) for m in comp]
        link_sims = [links.sim[i] for i in comp_links]
        methods = sorted({links.method[i] for i in comp_links})
        shown = [
            [ids[links.a[i]], ids[links.b[i]], round(links.sim[i], 4), links.method[i]]
            for i in comp_links[:MAX_STORED_LINKS]
        ]
        return {
            "group_id": group_id_for(self.kind, member_ids),
            "kind": self.kind,
            "member_ids": member_ids,
            "similarities": sims,
            "size": len(member_ids),
            "method": "+".join(methods),
            "threshold": float(min(self.thresholds[THRESHOLD_OF[m]] for m in methods))
            if methods
            else 0.0,
            "max_similarity": round(max(link_sims), 4) if link_sims else 0.0,
            "min_similarity": round(min(link_sims), 4) if link_sims else 0.0,
            "keeper_id": member_ids[keeper_pos],
            "keeper_reason": reason,
            "decision": DUP_PENDING,
            "external_ids": [m for m in member_ids if m.startswith(EXTERNAL_PREFIX)],
            "links_json": json.dumps(shown),
            "created_at": self.now,
            "run_id": self.run_id,
        }

    def rows(self, uf: UnionFind, used: list[int], against: bool) -> list[dict[str, Any]]:
        components = uf.components(min_size=2)
        if against:  # a group must hold at least one local item and one external
            components = [c for c in components if min(c) < self.items.n_local <= max(c)]
        link_index: dict[int, list[int]] = {}
        for i in used:
            link_index.setdefault(uf.find(self.found.links.a[i]), []).append(i)
        return [self.row(comp, link_index.get(uf.find(comp[0]), [])) for comp in components]


def supersede(
    store: Store,
    existing: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    full_run: bool,
) -> int:
    """Mark pending groups that this run regrouped as superseded (kept for the audit)."""
    new_ids = {r["group_id"] for r in rows}
    members_now = {m for r in rows for m in r["member_ids"]}
    stale = []
    for group in existing:
        if group["decision"] != DUP_PENDING or group["group_id"] in new_ids:
            continue
        # A full run recomputes every link: a pending group it did not find again is stale.
        # An incremental run only supersedes groups whose members it regrouped.
        if full_run or members_now.intersection(group["member_ids"]):
            stale.append(group["group_id"])
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        # only groups still pending now: a decision taken while dedup ran stays
        store.update_where(
            "dup_groups",
            f"decision = {quote(DUP_PENDING)} AND {in_list('group_id', chunk)}",
            {"decision": DUP_SUPERSEDED},
        )
    return len(stale)
