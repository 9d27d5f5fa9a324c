"""Near-duplicate images, captions and questions: found, grouped, reviewed — never deleted.

Public API:
- `run_dedup(store, settings, kinds=..., threshold=..., against=..., since_run=...)` → DedupReport
- `list_groups` / `count_groups` / `select_group_ids`: pages of `dup_groups` for review
- `decide_groups(store, ids, "resolve" | "dismiss" | "undo", user=...)`, `apply_policy(...)`
- `rejected_members(store)` / `group_links(store)`: what splits and exports must respect
- `exact_topk`, `ann_topk`, `all_pairs_topk`: the neighbour search (also used by benchmarks)
"""

from microvqa_tui.pipeline.dedup.core import DedupReport, KindReport, run_dedup
from microvqa_tui.pipeline.dedup.decisions import (
    ACTIONS,
    apply_policy,
    count_groups,
    decide_groups,
    group_links,
    list_groups,
    rejected_members,
    select_group_ids,
)
from microvqa_tui.pipeline.dedup.knn import (
    AnnParams,
    Neighbours,
    all_pairs_topk,
    ann_topk,
    exact_topk,
)
from microvqa_tui.pipeline.dedup.settings import DedupSettings, dedup_settings
from microvqa_tui.pipeline.dedup.unionfind import UnionFind

__all__ = [
    "ACTIONS",
    "AnnParams",
    "DedupReport",
    "DedupSettings",
    "KindReport",
    "Neighbours",
    "UnionFind",
    "all_pairs_topk",
    "ann_topk",
    "apply_policy",
    "count_groups",
    "decide_groups",
    "dedup_settings",
    "exact_topk",
    "group_links",
    "list_groups",
    "rejected_members",
    "run_dedup",
    "select_group_ids",
]
