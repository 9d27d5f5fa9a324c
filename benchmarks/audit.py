"""Audit of an imported MCQ set with planted inconsistent items, offline models only.

    python benchmarks/audit.py                 # MiniLM + SmolLM2 agent, keep fraction 0.75
    python benchmarks/audit.py --no-agent      # MiniLM only (minutes faster on a CPU)
    python benchmarks/audit.py --json

The set is built from the embedded sample (assets/sample, 32 real figures): each caption
gives up to `--per-figure` extractive QAs (a clause split into a question about its first
words and the rest as the answer), each QA an MCQ whose distractors are other figures'
answers, written as a MicroVQA++-layout Parquet file. A third of the items (`--planted`)
carry another figure's question, choices and answer: a wrong pairing whose label is known.
The file then goes through the tool as a user's would: ingest (imports the MCQs and their
QAs) → embed (MiniLM text, pixel descriptor) → signals (MiniLM text similarity, SmolLM2
agent, pixel-neighbour caption agreement; NLI and CLIP are not offline and are recorded as
unavailable) → graph at the default keep fraction. Reported: ROC-AUC of the graph score and
of each single signal (direction-corrected) for telling planted from intact items, and how
many planted items the graph held out (their MCQs held out with the graph's reason).

Caveat: the QAs are extractive (their words come from the caption), so text similarity to
the caption is a strong signal here; generated or paraphrased QAs make it weaker.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SAMPLE = ROOT / "assets" / "sample"
_SPLIT = re.compile(r"(?<=[.;])\s+|\s*\([A-H](?:, [A-H])*\)\s*")
MIN_WORDS, HEAD_WORDS = 9, 4


def clauses(caption: str) -> list[str]:
    """Informative clauses of a caption (no scale bars, no acquisition details)."""
    out = []
    for part in _SPLIT.split(caption):
        text = part.strip().rstrip(".;")
        words = text.split()
        if len(words) >= MIN_WORDS and not re.search(r"scale bar|acquired|objective", text, re.I):
            out.append(text)
    return out


def qa_from(clause: str) -> tuple[str, str]:
    words = clause.split()
    head = " ".join(words[:HEAD_WORDS])
    return f"In this figure, what is observed regarding '{head}'?", " ".join(words[HEAD_WORDS:])


def build_items(per_figure: int) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()]
    items = []
    for fig, record in enumerate(records):
        parts = sorted(clauses(record["caption"]), key=len, reverse=True)[:per_figure]
        for part in parts:
            question, answer = qa_from(part)
            items.append({"figure": fig, "record": record, "question": question, "answer": answer})
    return items


def corrupt(items: list[dict[str, Any]], fraction: float, seed: int) -> np.ndarray:
    """Give `fraction` of the items another figure's QA (in place); the planted mask."""
    rng = np.random.default_rng(seed)
    n = len(items)
    planted = np.zeros(n, bool)
    planted[rng.choice(n, round(fraction * n), replace=False)] = True
    originals = [(it["question"], it["answer"]) for it in items]
    for i in np.flatnonzero(planted):
        donors = [j for j in range(n) if items[j]["figure"] != items[i]["figure"]]
        j = int(rng.choice(donors))
        items[i]["question"], items[i]["answer"] = originals[j]
    return planted


def write_parquet(items: list[dict[str, Any]], path: Path, seed: int) -> None:
    """The MicroVQA++ layout: distractors are other items' answers; correct index varies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed + 1)
    answers = sorted({it["answer"] for it in items})
    rows = []
    for i, it in enumerate(items):
        pool = [a for a in answers if a != it["answer"]]
        distractors = [pool[k] for k in rng.choice(len(pool), 3, replace=False)]
        position = i % 4
        choices = [*distractors[:position], it["answer"], *distractors[position:]]
        image = SAMPLE / it["record"]["image"]
        rows.append(
            {
                "image_name": it["record"]["id"],
                "image": {"bytes": image.read_bytes(), "path": image.name},
                "question": it["question"],
                "choices": choices,
                "correct_index": position,
                "correct_answer": it["answer"],
                "cot": "",
                "task_str": "expert_visual_understanding",
                "image_caption": it["record"]["caption"],
                "images_source": it["record"].get("article_id", ""),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path)


def signal_aucs(store, labels: dict[str, int]) -> dict[str, float]:
    """ROC-AUC of each single signal (direction-corrected, median where missing)."""
    from graph_quality import single_signal_scores

    from microvqa_tui.pipeline.graph.run import read_inputs
    from microvqa_tui.pipeline.graph.train import roc_auc

    inputs, _ = read_inputs(store)
    y = np.array([labels[q] for q in inputs.qa_ids])
    scores = single_signal_scores(inputs)
    return {name: round(float(roc_auc(y, s)), 4) for name, s in scores.items()}


def run_pipeline(source: Path, settings) -> dict[str, float]:
    """ingest → embed → signals → graph, as `microvqa ingest` / `run STEP` would; seconds."""
    from microvqa_tui.config import IngestSettings
    from microvqa_tui.ingest import ingest_source
    from microvqa_tui.pipeline.embed import run_embed
    from microvqa_tui.pipeline.graph.run import run_graph
    from microvqa_tui.pipeline.signals import run_signals
    from store import open_store

    store = open_store(settings.store)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    ingest_source(store, source, IngestSettings())
    timings["ingest_s"] = round(time.perf_counter() - clock, 1)
    for name, step in (("embed", run_embed), ("signals", run_signals), ("graph", run_graph)):
        clock = time.perf_counter()
        step(store, settings)
        timings[f"{name}_s"] = round(time.perf_counter() - clock, 1)
    return timings


def measure(store, items: list[dict[str, Any]], planted: np.ndarray) -> dict[str, Any]:
    """ROC-AUCs and hold-outs for the planted items (label 1 = intact, as the score reads)."""
    from microvqa_tui.pipeline.graph.train import roc_auc

    bad = {(items[i]["question"], items[i]["record"]["id"]) for i in np.flatnonzero(planted)}
    figure_of = {
        r["figure_id"]: r["original_id"]
        for r in store.rows("figures", None, ["figure_id", "original_id"])
    }
    qas = store.rows("qas", None, ["qa_id", "question", "figure_id", "score", "status"])
    labels = {q["qa_id"]: int((q["question"], figure_of[q["figure_id"]]) not in bad) for q in qas}
    y = np.array([labels[q["qa_id"]] for q in qas])
    held = np.array([q["status"] == "held_out" for q in qas])
    singles = signal_aucs(store, labels)
    best = max(singles, key=singles.get) if singles else ""
    mcqs = store.rows("mcqs", None, ["qa_id", "status"])
    return {
        "items": len(qas),
        "planted": int((y == 0).sum()),
        "graph_auc": round(float(roc_auc(y, np.array([q["score"] for q in qas]))), 4),
        "best_signal": best,
        "best_signal_auc": singles.get(best),
        "signal_aucs": singles,
        "held_out": int(held.sum()),
        "planted_held_out": int((held & (y == 0)).sum()),
        "planted_mcqs_held_out": sum(
            m["status"] == "held_out" and labels.get(m["qa_id"]) == 0 for m in mcqs
        ),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from microvqa_tui.config import load_settings
    from store import open_store

    items = build_items(args.per_figure)
    planted = corrupt(items, args.planted, args.seed)
    source = work / "corrupted.parquet"
    write_parquet(items, source, args.seed)
    families = ["text", "pixel"] + ([] if args.no_agent else ["agent"])
    settings = load_settings(
        store=work / "store",
        embed={"spaces": ["text_caption", "text_qa", "pixel_image"]},
        signals={"families": families, "agent_source": "caption"},
        graph={"seed": args.seed},
    )
    timings = run_pipeline(source, settings)
    result = measure(open_store(settings.store), items, planted)
    return {
        **result,
        "signals": families,
        "keep_fraction": settings.graph.keep_fraction,
        "timings_s": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-figure", type=int, default=3, help="QAs per sample figure")
    parser.add_argument("--planted", type=float, default=1 / 3, help="share of items corrupted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-agent", action="store_true", help="skip the SmolLM2 agent signal")
    parser.add_argument("--work", type=Path, help="keep the store and file here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        result = run(args, args.work)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args, Path(tmp))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['items']} imported MCQs, {result['planted']} planted (another figure's QA)")
    print(f"signals: {', '.join(result['signals'])}; keep fraction {result['keep_fraction']}")
    print(f"ROC-AUC graph score        {result['graph_auc']:.3f}")
    print(f"ROC-AUC best single signal {result['best_signal_auc']:.3f} ({result['best_signal']})")
    for name, auc in sorted(result["signal_aucs"].items(), key=lambda kv: -kv[1]):
        print(f"    {name:36s} {auc:.3f}")
    print(
        f"held out {result['held_out']}, of which planted {result['planted_held_out']} "
        f"of {result['planted']} (their MCQs held out: {result['planted_mcqs_held_out']})"
    )
    print("timings (s): " + ", ".join(f"{k} {v}" for k, v in result["timings_s"].items()))


if __name__ == "__main__":
    main()
