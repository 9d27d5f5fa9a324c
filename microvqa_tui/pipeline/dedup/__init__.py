"""Near-duplicate images, captions and questions: found, grouped, reviewed — never deleted.

Public API:
- `run_dedup(store, settings, kinds=..., threshold=..., against=..., since_run=...)` → DedupReport
- `list_groups` / `count_groups` / `select_group_ids`: pages of `dup_groups` for review
- `decide_groups(store, ids, "resolve" | "dismiss" | "undo", user=...)`, `apply_policy(...)`
- `rejected_members(store)` / `group_links(store)`: what splits and exports must respect
- `exact_topk`, `ann_topk`, `all_pairs_topk`: the neighbour search (also used by benchmarks)
"""

from microvqa_tui.common.lazy import lazy_names
from microvqa_tui.config.dedup import DedupSettings, dedup_settings

# Names resolve lazily (PEP 562): listing the CLI's commands loads neither numpy nor lancedb.
_HOMES = {
    "DedupReport": "core",
    "KindReport": "core",
    "run_dedup": "core",
    "ACTIONS": "decisions",
    "apply_policy": "decisions",
    "count_groups": "decisions",
    "decide_groups": "decisions",
    "group_links": "decisions",
    "list_groups": "decisions",
    "rejected_members": "decisions",
    "select_group_ids": "decisions",
    "AnnParams": "knn",
    "Neighbours": "knn",
    "all_pairs_topk": "knn",
    "ann_topk": "knn",
    "exact_topk": "knn",
    "UnionFind": "unionfind",
}


__getattr__ = lazy_names(__name__, _HOMES)


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
