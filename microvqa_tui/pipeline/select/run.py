"""The selection step: reasoning checks, shortcut removal, Bloom levels, difficulty, policy.

For each MCQ not yet checked with the current settings, model and prompts:
1. reasoning checks on the CoT (no model); a failing CoT is written once more, then the item
   is held out with the reason;
2. image-free test and RefineBot-like rewrites; an item still answerable is flagged;
3. Bloom level (LLM few-shot + verb rule);
4. difficulty: pass rate of a small model over k answers, and its tier.
The results are stored on the row (and in params_json["select"]), so a re-run resumes and
only the policy is recomputed. Then the selection policy keeps or holds out the surviving
items, and the funnel (every stage and check: entered, passed, held out, why) goes into the
report and the run record, with the policy and its counts.

Only MCQs no person has reviewed are touched. Imported MCQs are checked too (unless
`select.include_imported` is off), except those whose QA the graph held out.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from microvqa_tui.common.funnel import GENERATED, IMPORTED, FunnelRow, origin_label, reason_code
from microvqa_tui.config.select import SelectSettings
from microvqa_tui.pipeline.graph.mcq_verdict import graph_verdict, held_by_graph
from microvqa_tui.pipeline.select.bloom import BLOOM_LEVELS
from microvqa_tui.pipeline.select.checker import HELD, SURVIVOR
from microvqa_tui.pipeline.select.difficulty import PolicyOutcome, apply_policy, tier
from microvqa_tui.pipeline.stage3 import prompts
from microvqa_tui.pipeline.stage3.generate import ORIGIN as STAGE3_ORIGIN
from microvqa_tui.vocabulary import (
    REVIEW_UNREVIEWED,
    STATUS_FLAGGED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
    STATUS_PENDING,
)
from store import Store

STEP = "select"
KEY = "select"
# The MCQ columns this step owns: its writes set these and nothing else, so a review (or an
# edit) made while it runs stays. The wording columns are written only for the items whose
# shortcut rewrite or CoT regeneration changed them.
POLICY_COLUMNS = ["status", "reason", "difficulty_tier"]
MEASURE_COLUMNS = ["bloom_level", "bloom_confidence", "image_free_pass_rate", "pass_rate"]
CHECK_COLUMNS = [*POLICY_COLUMNS, *MEASURE_COLUMNS, "selection_version", "params_json", "run_id"]
WORDING_COLUMNS = ["question", "choices", "cot"]
TEMPLATES = {
    "answer": "answer_image_free.md",
    "difficulty": "answer_difficulty.md",
    "rewrite": "refine_rewrite.md",
    "check": "refine_check.md",
    "bloom": "bloom_classify.md",
    "cot": prompts.COT_TEMPLATE,
}
# Settings that change no per-item result (only the policy or the tiers, recomputed anyway).
UNVERSIONED = {"policy", "hardest_fraction", "never_max", "always_min", "limit", "batch_size"}


def params_of(row: dict) -> dict[str, Any]:
    try:
        value = json.loads(row.get("params_json") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def select_version(cfg: SelectSettings, model: str, templates: dict) -> str:
    relevant = cfg.model_dump(mode="json", exclude=UNVERSIONED | {"prompt_dir"})
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode())
    digest.update(model.encode())
    for name in sorted(templates):
        digest.update(templates[name].text.encode())
    return digest.hexdigest()[:12]


def managed_rows(store: Store, include_imported: bool = True) -> list[dict]:
    """Unreviewed MCQs the step works on: pending ones, imported ones the graph kept, and
    those it decided before; never one the graph held out (its QA is inconsistent)."""
    where = f"review = '{REVIEW_UNREVIEWED}'"
    if not include_imported:
        where += f" AND origin = '{STAGE3_ORIGIN}'"
    rows = store.rows("mcqs", where)
    out = [row for row in rows if _managed(row)]
    out.sort(key=lambda r: r["mcq_id"])
    return out


def _managed(row: dict) -> bool:
    if held_by_graph(row):
        return False
    if row["selection_version"]:  # checked before
        return not row["superseded_by"]
    return row["status"] == STATUS_PENDING or (
        row["status"] == STATUS_KEPT and graph_verdict(row) == STATUS_KEPT
    )


# ---------------------------------------------------------------------------- report
@dataclass
class SelectReport:
    run_id: str = ""
    model: str = ""
    version: str = ""
    managed: int = 0
    checked: int = 0
    already_checked: int = 0
    waiting: int = 0
    timed_out: int = 0  # MCQs left unchecked because a model call timed out
    kept: int = 0
    held_out: int = 0
    flagged: int = 0
    rewritten: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    bloom: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    selection_policy: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    outside_model_share: float = 0.0
    funnel: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- the policy
def apply_and_write_policy(
    store: Store, cfg: SelectSettings, version: str, run_id: str
) -> PolicyOutcome:
    """Apply the policy to every surviving item of this version and write what changed."""
    rows = managed_rows(store, cfg.include_imported)
    current = [r for r in rows if r["selection_version"] == version]
    survivors = {
        r["mcq_id"]: r["pass_rate"] for r in current if params_of(r)[KEY].get("outcome") == SURVIVOR
    }
    outcome = apply_policy(survivors, cfg)
    kept = set(outcome.kept)
    changed = []
    for row in current:
        before = (row["status"], row["reason"], row["difficulty_tier"])
        row["difficulty_tier"] = tier(row["pass_rate"], cfg)
        if row["mcq_id"] in kept:
            row["status"], row["reason"] = STATUS_KEPT, ""
        elif row["mcq_id"] in outcome.held_out:
            row["status"], row["reason"] = STATUS_HELD_OUT, outcome.held_out[row["mcq_id"]]
        if (row["status"], row["reason"], row["difficulty_tier"]) != before:
            changed.append(row)
    store.update_columns("mcqs", changed, POLICY_COLUMNS)
    return outcome


def fill_report(
    report: SelectReport,
    rows: list[dict],
    version: str,
    outcome: PolicyOutcome,
    cfg: SelectSettings,
) -> None:
    current = [r for r in rows if r["selection_version"] == version]
    results = [params_of(r)[KEY] for r in current]
    report.kept = sum(r["status"] == STATUS_KEPT for r in current)
    report.held_out = sum(r["status"] == STATUS_HELD_OUT for r in current)
    report.flagged = sum(r["status"] == STATUS_FLAGGED for r in current)
    report.reasons = dict(
        Counter(reason_code(r["reason"]) for r in current if r["status"] != STATUS_KEPT)
    )
    report.rewritten = sum(bool(x.get("shortcut", {}).get("rewritten")) for x in results)
    report.bloom = {
        f"{level} {BLOOM_LEVELS[level]}": sum(r["bloom_level"] == level for r in current)
        for level in BLOOM_LEVELS
    }
    report.tiers = dict(Counter(r["difficulty_tier"] or "unmeasured" for r in current))
    report.selection_policy = outcome.counts()
    report.funnel = [row.as_dict() for row in funnel_by_origin(current, results, outcome, cfg)]


def funnel_by_origin(
    rows: list[dict], results: list[dict], outcome: PolicyOutcome, cfg: SelectSettings
) -> list[FunnelRow]:
    """The select stage's funnel, generated and imported items counted apart."""
    funnel: list[FunnelRow] = []
    for origin in (GENERATED, IMPORTED):
        pick = [i for i, row in enumerate(rows) if origin_label(row.get("origin")) == origin]
        if not pick:
            continue
        ids = {rows[i]["mcq_id"] for i in pick}
        part = PolicyOutcome(
            outcome.policy,
            [m for m in outcome.kept if m in ids],
            {m: r for m, r in outcome.held_out.items() if m in ids},
            outcome.fraction,
        )
        for row in funnel_from([rows[i] for i in pick], [results[i] for i in pick], part, cfg):
            row.origin = origin
            funnel.append(row)
    return funnel


def funnel_from(
    rows: list[dict], results: list[dict], outcome: PolicyOutcome, cfg: SelectSettings
) -> list[FunnelRow]:
    """The select stage's funnel over every item checked with the current version."""
    funnel = []
    reasoning = FunnelRow(STEP, "reasoning", entered=len(rows))
    regenerated = fixed = 0
    for result in results:
        info = result.get("reasoning")
        if info is None or info["passed"]:
            reasoning.passed += 1
        else:
            reasoning.hold(reason_code(info["reason"]))
        if info and info.get("regenerated"):
            regenerated += 1
            fixed += bool(info["passed"])
    reasoning.note = (
        f"{regenerated} CoTs regenerated, {fixed} fixed by it"
        if cfg.reasoning_checks
        else "disabled"
    )
    funnel.append(reasoning)
    checked = [x for x in results if x.get("outcome") != HELD]
    shortcut = FunnelRow(STEP, "shortcut", entered=len(checked))
    for result in checked:
        info = result.get("shortcut")
        if info and info["answerable"]:
            shortcut.hold("image_free_answerable")
        else:
            shortcut.passed += 1
    rewrites = [x["shortcut"] for x in checked if x.get("shortcut")]
    shortcut.note = (
        f"flagged, not dropped; {sum(bool(s['rounds']) for s in rewrites)} tested answerable, "
        f"{sum(s['rewritten'] for s in rewrites)} rewritten"
        if cfg.shortcut_removal
        else "disabled"
    )
    funnel.append(shortcut)
    bloom = FunnelRow(STEP, "bloom", entered=len(checked), passed=len(checked))
    infos = [x["bloom"] for x in checked if x.get("bloom")]
    levels = Counter(i["level"] for i in infos)
    bloom.note = (
        "levels "
        + " ".join(f"{lv}:{levels.get(lv, 0)}" for lv in BLOOM_LEVELS)
        + f"; rule fallback {sum(i['source'] == 'rule' for i in infos)}"
        + f"; LLM/rule disagreements {sum(bool(i['notes']) and i['source'] == 'llm' for i in infos)}"
        if cfg.bloom
        else "disabled"
    )
    funnel.append(bloom)
    difficulty = FunnelRow(STEP, "difficulty", entered=len(checked), passed=len(checked))
    tiers = Counter(
        tier(r["pass_rate"], cfg) or "unmeasured"
        for r, x in zip(rows, results, strict=True)
        if x.get("outcome") != HELD
    )
    difficulty.note = (
        "tiers " + ", ".join(f"{t}: {n}" for t, n in sorted(tiers.items()))
        if cfg.difficulty
        else "disabled"
    )
    funnel.append(difficulty)
    policy = FunnelRow(
        STEP, f"policy:{outcome.policy}", entered=len(outcome.kept) + len(outcome.held_out)
    )
    policy.passed = len(outcome.kept)
    for reason in outcome.held_out.values():
        policy.hold(reason_code(reason))
    if outcome.fraction is not None:
        policy.note = f"keep the hardest {outcome.fraction:.0%}"
    funnel.append(policy)
    return funnel
