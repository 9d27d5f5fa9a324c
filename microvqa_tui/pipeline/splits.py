"""Leakage-free train/validation/test splits.

Items (MCQs) that must not be separated are joined with union-find:
- the same figure (any of an MCQ's images),
- the same source article (`figures.article_id`, e.g. a PMC id),
- the same duplicate group (pending or resolved; dismissed groups are not duplicates):
  image groups through their figures, caption groups through their captions' figures,
  question groups directly.
Whole components are then assigned, largest first, each to the split with the largest
relative deficit — summed over the component's strata (task type × Bloom level) and over
the split's overall size — so strata stay roughly proportional. A tie goes to the split with
the larger fraction; remaining ties and the order of equal-sized components come from `seed`: the same inputs and seed give the same splits.

`leakage_report` checks the result independently: groups, articles and figures seen in more
than one split (all must be zero), and each split's task/Bloom mix.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.dedup.unionfind import UnionFind

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class SplitItem:
    item_id: str
    figure_ids: list[str]
    article_ids: list[str] = field(default_factory=list)
    task: str = ""
    bloom: int | None = None

    @property
    def stratum(self) -> tuple[str, int | None]:
        return (self.task, self.bloom)


def parse_fractions(text: str | Sequence[float]) -> dict[str, float]:
    """'0.8,0.1,0.1' (or 80,10,10) → {'train': .8, 'validation': .1, 'test': .1}."""
    if isinstance(text, str):
        try:
            values = [float(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise PipelineError(
                f"bad split {text!r}", hint="give fractions like 0.8,0.1,0.1"
            ) from None
    else:
        values = [float(v) for v in text]
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise PipelineError(
            f"bad split {text!r}", hint="one to three non-negative fractions, e.g. 0.8,0.1,0.1"
        )
    total = sum(values)
    return {name: value / total for name, value in zip(SPLIT_NAMES, values, strict=False)}


def components(items: Sequence[SplitItem], groups: Sequence[Sequence[str]] = ()) -> list[list[int]]:
    """Indices of items that must share a split. `groups` are lists of keys, each key either
    an item id or a figure id (a duplicate group, already translated to those)."""
    uf = UnionFind(len(items))
    first: dict[str, int] = {}

    def link(key: str, index: int) -> None:
        other = first.setdefault(key, index)
        if other != index:
            uf.union(other, index)

    for index, item in enumerate(items):
        link("item:" + item.item_id, index)
        for fid in item.figure_ids:
            link("fig:" + fid, index)
        for article in item.article_ids:
            if article:
                link("art:" + article, index)
    for members in groups:
        anchor: int | None = None
        for key in members:
            for prefix in ("item:", "fig:"):
                index = first.get(prefix + key)
                if index is None:
                    continue
                if anchor is None:
                    anchor = index
                else:
                    uf.union(anchor, index)
    return uf.components()


def assign_splits(
    items: Sequence[SplitItem],
    fractions: dict[str, float],
    *,
    seed: int = 0,
    groups: Sequence[Sequence[str]] = (),
) -> dict[str, str]:
    """item_id → split name. Deterministic for a given seed."""
    names = [name for name, frac in fractions.items() if frac > 0]
    if not names:
        raise PipelineError("every split fraction is zero")
    comps = components(items, groups)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(comps))
    order = sorted(range(len(comps)), key=lambda c: (-len(comps[c]), int(tiebreak[c])))
    n_total = len(items)
    strata_total = Counter(item.stratum for item in items)
    counts = {name: 0 for name in names}
    strata_counts: dict[str, Counter] = {name: Counter() for name in names}
    result: dict[str, str] = {}
    for c in order:
        members = comps[c]
        comp_strata = Counter(items[i].stratum for i in members)
        scores = []
        for name in names:
            target = fractions[name]
            score = len(members) * (1.0 - counts[name] / (target * n_total))
            for stratum, k in comp_strata.items():
                score += k * (1.0 - strata_counts[name][stratum] / (target * strata_total[stratum]))
            scores.append(score)
        best = max(scores)
        candidates = [i for i, s in enumerate(scores) if s >= best - 1e-12]
        # On a tie the larger split wins (a lone first component goes to train, not to a
        # random split), then the seed decides.
        widest = max(fractions[names[i]] for i in candidates)
        candidates = [i for i in candidates if fractions[names[i]] >= widest - 1e-12]
        choice = names[
            candidates[int(rng.integers(len(candidates)))] if len(candidates) > 1 else candidates[0]
        ]
        counts[choice] += len(members)
        strata_counts[choice].update(comp_strata)
        for i in members:
            result[items[i].item_id] = choice
    return result


def leakage_report(
    items: Sequence[SplitItem],
    assignment: dict[str, str],
    *,
    groups: dict[str, Sequence[Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """Cross-split groups / articles / figures (each must be 0) and per-split mixes.

    `groups` maps a kind to its groups' keys (item ids or figure ids)."""
    by_figure: dict[str, set[str]] = defaultdict(set)
    by_article: dict[str, set[str]] = defaultdict(set)
    for item in items:
        split = assignment.get(item.item_id)
        if split is None:
            continue
        for fid in item.figure_ids:
            by_figure[fid].add(split)
        for article in item.article_ids:
            if article:
                by_article[article].add(split)
    cross_groups: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for kind, kind_groups in (groups or {}).items():
        crossing = 0
        for members in kind_groups:
            splits: set[str] = set()
            for key in members:
                if key in assignment:
                    splits.add(assignment[key])
                splits |= by_figure.get(key, set())
            if len(splits) > 1:
                crossing += 1
                if len(examples) < 5:
                    examples.append(
                        {"kind": kind, "members": list(members)[:5], "splits": sorted(splits)}
                    )
        cross_groups[kind] = crossing
    sizes = Counter(assignment.values())
    tasks: dict[str, Counter] = defaultdict(Counter)
    blooms: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        split = assignment.get(item.item_id)
        if split is not None:
            tasks[split][item.task or "unknown"] += 1
            blooms[split][str(item.bloom) if item.bloom is not None else "unknown"] += 1
    return {
        "sizes": dict(sizes),
        "cross_split_groups": sum(cross_groups.values()),
        "cross_split_groups_by_kind": cross_groups,
        "cross_split_articles": sum(1 for s in by_article.values() if len(s) > 1),
        "cross_split_figures": sum(1 for s in by_figure.values() if len(s) > 1),
        "examples": examples,
        "task_by_split": {k: dict(v) for k, v in tasks.items()},
        "bloom_by_split": {k: dict(v) for k, v in blooms.items()},
        "stratification_max_deviation": _max_deviation(items, assignment),
    }


def _max_deviation(items: Sequence[SplitItem], assignment: dict[str, str]) -> float:
    """Largest |share of a stratum in a split − its share overall| over non-empty splits."""
    overall = Counter(item.stratum for item in items if item.item_id in assignment)
    total = sum(overall.values())
    per: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        split = assignment.get(item.item_id)
        if split is not None:
            per[split][item.stratum] += 1
    worst = 0.0
    for counter in per.values():
        n = sum(counter.values())
        for stratum, k in overall.items():
            worst = max(worst, abs(counter[stratum] / n - k / total))
    return round(worst, 4)


def dup_groups_as_keys(
    store: Any, caption_figure: dict[str, str] | None = None
) -> dict[str, list[list[str]]]:
    """The store's duplicate groups (pending + resolved) as split keys: figure ids for image
    and caption groups (captions mapped to their figures), mcq ids for question groups."""
    from microvqa_tui.pipeline.dedup.decisions import group_links

    links = group_links(store)
    if links.get("caption") and caption_figure is None:
        caption_figure = {
            r["caption_id"]: r["figure_id"]
            for r in store.rows("captions", columns=["caption_id", "figure_id"])
        }
    out: dict[str, list[list[str]]] = {
        "image": links.get("image", []),
        "question": links.get("question", []),
    }
    out["caption"] = [
        sorted({caption_figure[c] for c in members if c in (caption_figure or {})})
        for members in links.get("caption", [])
    ]
    out["caption"] = [g for g in out["caption"] if g]
    return out
