"""The dataset card (README.md) written next to an export."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from store import Store

# Steps of the curation funnel, in order, as named in the runs table.
FUNNEL_STEPS = (
    "ingest",
    "stage1",
    "qa",
    "signals",
    "graph",
    "filter",
    "mcq",
    "bloom",
    "difficulty",
    "dedup",
    "export",
)


def runs_summary(store: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(latest successful run of each step with its counts, models used per step)."""
    if store.count("runs") == 0:
        return [], {}
    rows = store.rows(
        "runs",
        columns=[
            "run_id",
            "step",
            "status",
            "started_at",
            "counts_json",
            "models_json",
            "config_json",
        ],
    )
    latest: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["started_at"]):
        if row["status"] != "done":
            continue
        latest[row["step"]] = row
        try:
            used = json.loads(row["models_json"] or "{}")
        except ValueError:
            used = {}
        try:
            config = json.loads(row["config_json"] or "{}")
        except ValueError:
            config = {}
        # prompts: whatever the step recorded about them (prompt_version, prompt_file, ...)
        prompts = {
            k: v for k, v in config.items() if "prompt" in k and isinstance(v, str | int | float)
        }
        if used or prompts:
            models.setdefault(row["step"], {}).update({**used, **prompts})
    order = {step: i for i, step in enumerate(FUNNEL_STEPS)}
    funnel = []
    for step, row in sorted(
        latest.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[1]["started_at"])
    ):
        try:
            counts = json.loads(row["counts_json"] or "{}")
        except ValueError:
            counts = {}
        funnel.append(
            {
                "step": step,
                "run_id": row["run_id"],
                "started_at": str(row["started_at"])[:19],
                "counts": counts,
            }
        )
    return funnel, models


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _dist(counter: Counter, total: int) -> str:
    rows = [
        [k, v, f"{100 * v / max(total, 1):.1f}%"]
        for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]
    return _table(["value", "count", "share"], rows) if rows else "_none_"


def render_card(
    store: Store,
    *,
    records: list[dict[str, Any]],
    figures: dict[str, dict[str, Any]],
    report: dict[str, Any],
) -> str:
    fmt = report["format"]
    splits = report["splits"]
    total = sum(splits.values())
    funnel, models = runs_summary(store)
    licences = Counter()
    attributions: dict[str, set[str]] = {}
    used_figures = {fid for rec in records for fid in rec["image_ids"]}
    for fid in sorted(used_figures):
        fig = figures[fid]
        licences[fig.get("license") or "unknown"] += 1
        who = (fig.get("attribution") or "").strip()
        if who:
            attributions.setdefault(who, set()).add(fig.get("article_id") or "")
    mcq_models = Counter(rec.get("model") or "unknown" for rec in records)
    front = [
        "---",
        "license: other",
        "task_categories:",
        "- visual-question-answering",
        "- multiple-choice",
        "language:",
        "- en",
        "tags:",
        "- microscopy",
        "- biology",
        "- biomedical",
        "pretty_name: Microscopy MCQ VQA (MicroVQA++ layout)",
    ]
    if fmt == "parquet":
        front += ["configs:", "- config_name: default", "  data_files:"]
        for split in splits:
            front += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    front.append("---")
    leak = report["leakage"]
    parts = [
        "\n".join(front),
        "# Microscopy multiple-choice VQA dataset",
        f"Curated with microvqa_tui from figure–caption pairs (MicroVQA++ method). Export run "
        f"`{report['run_id']}`, format **{fmt}**, seed {report['seed']}, {report['created_at']}.",
        "## Counts and splits",
        _table(["split", "questions"], [[k, v] for k, v in splits.items()] + [["total", total]]),
        f"Images: {len(used_figures)}. Selection: {report['selection_rule']}.",
        "Excluded from the store's MCQs: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(report["excluded"].items())) or "none")
        + ".",
        "## Leakage",
        f"No duplicate group, source article or figure crosses splits: cross-split groups "
        f"{leak['cross_split_groups']}, articles {leak['cross_split_articles']}, figures "
        f"{leak['cross_split_figures']}. Largest deviation of a (task, Bloom) stratum's share "
        f"between a split and the whole: {leak['stratification_max_deviation']}.",
        "## Curation funnel",
        _table(
            ["step", "run", "started", "counts"],
            [
                [
                    f["step"],
                    f["run_id"],
                    f["started_at"],
                    ", ".join(f"{k}={v}" for k, v in f["counts"].items()),
                ]
                for f in funnel
            ],
        )
        if funnel
        else "_No run records in the store._",
        "## Task types",
        _dist(Counter(rec.get("task_str") or "unknown" for rec in records), total),
        "## Bloom levels",
        _dist(
            Counter(
                str(rec["bloom_level"]) if rec.get("bloom_level") is not None else "unknown"
                for rec in records
            ),
            total,
        ),
        "## Families",
        _dist(Counter(rec.get("family") or "unknown" for rec in records), total),
        "## Models and prompts",
        _table(
            ["model (MCQ generation)", "questions"], [[k, v] for k, v in mcq_models.most_common()]
        ),
        _table(
            ["step", "models"],
            [[step, json.dumps(m, sort_keys=True)] for step, m in sorted(models.items())],
        )
        if models
        else "_No model records in the runs table._",
        "## Sources, licences and attributions",
        "Each image keeps the licence of its source article; reuse must follow it.",
        _dist(licences, len(used_figures)),
        _table(
            ["attribution", "articles"],
            [
                [who, ", ".join(sorted(a for a in arts if a)) or "-"]
                for who, arts in sorted(attributions.items())[:200]
            ],
        )
        if attributions
        else "_No attributions recorded._",
        "## Files",
        "\n".join(f"- `{f}`" for f in report["files"] if not f.startswith("images/"))
        + (
            f"\n- `images/` ({sum(1 for f in report['files'] if f.startswith('images/'))} files)"
            if any(f.startswith("images/") for f in report["files"])
            else ""
        ),
        "## Loading",
        '```python\nfrom datasets import load_dataset\nds = load_dataset("parquet", data_files={"train": "data/train-00000-of-00001.parquet"})\n```'
        if fmt == "parquet"
        else "Each line/entry refers to its images under `images/` by relative path.",
    ]
    return "\n\n".join(parts) + "\n"
