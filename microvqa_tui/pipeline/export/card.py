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


def _json(text: str | None) -> dict[str, Any]:
    """A run's JSON column; an unreadable one counts as empty (the card is still written)."""
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


RUN_COLUMNS = [
    "run_id",
    "step",
    "status",
    "started_at",
    "counts_json",
    "models_json",
    "config_json",
]


def runs_summary(store: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(latest successful run of each step with its counts, models used per step)."""
    rows = store.rows("runs", columns=RUN_COLUMNS)
    latest: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["started_at"]):
        if row["status"] != "done":
            continue
        latest[row["step"]] = row
        used = _json(row["models_json"])
        # prompts: whatever the step recorded about them (prompt_version, prompt_file, ...)
        prompts = {
            k: v
            for k, v in _json(row["config_json"]).items()
            if "prompt" in k and isinstance(v, str | int | float)
        }
        if used or prompts:
            models.setdefault(row["step"], {}).update({**used, **prompts})
    order = {step: i for i, step in enumerate(FUNNEL_STEPS)}
    funnel = [
        {
            "step": step,
            "run_id": row["run_id"],
            "started_at": str(row["started_at"])[:19],
            "counts": _json(row["counts_json"]),
        }
        for step, row in sorted(
            latest.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[1]["started_at"])
        )
    ]
    return funnel, models


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _table_or(header: list[str], rows: list[list[Any]], empty: str) -> str:
    return _table(header, rows) if rows else empty


def _dist(counter: Counter, total: int) -> str:
    rows = [
        [k, v, f"{100 * v / max(total, 1):.1f}%"]
        for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]
    return _table(["value", "count", "share"], rows) if rows else "_none_"


FRONT_MATTER = [
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


def _front_matter(fmt: str, splits: dict[str, int]) -> str:
    """The Hugging Face card header; Parquet exports also declare their split files."""
    front = ["---", *FRONT_MATTER]
    if fmt == "parquet":
        front += ["configs:", "- config_name: default", "  data_files:"]
        for split in splits:
            front += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    front.append("---")
    return "\n".join(front)


def _counts(report: dict[str, Any], n_images: int) -> list[str]:
    splits = report["splits"]
    rows = [[k, v] for k, v in splits.items()] + [["total", sum(splits.values())]]
    excluded = ", ".join(f"{k}: {v}" for k, v in sorted(report["excluded"].items()))
    leak = report["leakage"]
    return [
        "## Counts and splits",
        _table(["split", "questions"], rows),
        f"Images: {n_images}. Selection: {report['selection_rule']}.",
        f"Excluded from the store's MCQs: {excluded or 'none'}.",
        "## Leakage",
        f"No duplicate group, source article or figure crosses splits: cross-split groups "
        f"{leak['cross_split_groups']}, articles {leak['cross_split_articles']}, figures "
        f"{leak['cross_split_figures']}. Largest deviation of a (task, Bloom) stratum's share "
        f"between a split and the whole: {leak['stratification_max_deviation']}.",
    ]


def _funnel(funnel: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            f["step"],
            f["run_id"],
            f["started_at"],
            ", ".join(f"{k}={v}" for k, v in f["counts"].items()),
        ]
        for f in funnel
    ]
    header = ["step", "run", "started", "counts"]
    return ["## Curation funnel", _table_or(header, rows, "_No run records in the store._")]


def _distributions(records: list[dict[str, Any]], total: int) -> list[str]:
    def bloom(rec: dict[str, Any]) -> str:
        return str(rec["bloom_level"]) if rec.get("bloom_level") is not None else "unknown"

    return [
        "## Task types",
        _dist(Counter(rec.get("task_str") or "unknown" for rec in records), total),
        "## Bloom levels",
        _dist(Counter(bloom(rec) for rec in records), total),
        "## Families",
        _dist(Counter(rec.get("family") or "unknown" for rec in records), total),
    ]


def _models(records: list[dict[str, Any]], models: dict[str, dict[str, Any]]) -> list[str]:
    mcq_models = Counter(rec.get("model") or "unknown" for rec in records)
    steps = [[step, json.dumps(m, sort_keys=True)] for step, m in sorted(models.items())]
    return [
        "## Models and prompts",
        _table(
            ["model (MCQ generation)", "questions"], [[k, v] for k, v in mcq_models.most_common()]
        ),
        _table_or(["step", "models"], steps, "_No model records in the runs table._"),
    ]


def _sources(used_figures: list[str], figures: dict[str, dict[str, Any]]) -> list[str]:
    """Licence counts and who to credit (with their articles) for the exported images."""
    licences: Counter = Counter()
    attributions: dict[str, set[str]] = {}
    for fid in used_figures:
        fig = figures[fid]
        licences[fig.get("license") or "unknown"] += 1
        who = (fig.get("attribution") or "").strip()
        if who:
            attributions.setdefault(who, set()).add(fig.get("article_id") or "")
    credits = [
        [who, ", ".join(sorted(a for a in arts if a)) or "-"]
        for who, arts in sorted(attributions.items())[:200]
    ]
    return [
        "## Sources, licences and attributions",
        "Each image keeps the licence of its source article; reuse must follow it.",
        _dist(licences, len(used_figures)),
        _table_or(["attribution", "articles"], credits, "_No attributions recorded._"),
    ]


LOAD_PARQUET = (
    "```python\nfrom datasets import load_dataset\n"
    'ds = load_dataset("parquet", data_files={"train": "data/train-00000-of-00001.parquet"})\n```'
)


def _files(files: list[str], fmt: str) -> list[str]:
    # Images are summarised as one line: an export may hold thousands.
    listed = "\n".join(f"- `{f}`" for f in files if not f.startswith("images/"))
    n_images = sum(1 for f in files if f.startswith("images/"))
    if n_images:
        listed += f"\n- `images/` ({n_images} files)"
    loading = (
        LOAD_PARQUET
        if fmt == "parquet"
        else "Each line/entry refers to its images under `images/` by relative path."
    )
    return ["## Files", listed, "## Loading", loading]


def render_card(
    store: Store,
    *,
    records: list[dict[str, Any]],
    figures: dict[str, dict[str, Any]],
    report: dict[str, Any],
) -> str:
    fmt = report["format"]
    total = sum(report["splits"].values())
    funnel, models = runs_summary(store)
    used_figures = sorted({fid for rec in records for fid in rec["image_ids"]})
    parts = [
        _front_matter(fmt, report["splits"]),
        "# Microscopy multiple-choice VQA dataset",
        f"Curated with microvqa_tui from figure–caption pairs (MicroVQA++ method). Export run "
        f"`{report['run_id']}`, format **{fmt}**, seed {report['seed']}, {report['created_at']}.",
        *_counts(report, len(used_figures)),
        *_funnel(funnel),
        *_distributions(records, total),
        *_models(records, models),
        *_sources(used_figures, figures),
        *_files(report["files"], fmt),
    ]
    return "\n\n".join(parts) + "\n"
