"""Scale of the HiCQA-Graph: `run graph` on a store of N QAs, time and memory per phase.

    python benchmarks/graph_scale.py                              # 10k and 100k QAs
    python benchmarks/graph_scale.py --sizes 1000000 --json out.json
    python benchmarks/graph_scale.py --sizes 100000 --device cuda --keep-stores

Two parts per size, each in its own subprocess (so each peak RSS is its own):

* set-up (not the product): a synthetic world shaped like a real store, generated and
  written chunk by chunk (memory = one chunk): ~4.6 QAs per figure (1-2 captions per figure,
  2-6 QAs per caption), CLIP image embeddings (512-d), MiniLM caption and QA embeddings
  (384-d), the signals (one row per QA and signal, as the signals step writes them), 10% of
  the QAs corrupted (wrong figure / contradicted; see `synthetic.planted`);
* the product: `run_graph(store, settings)` exactly as `microvqa run graph` calls it,
  timed per phase: reading the store, k-NN, build (the rest of it), weak labels, training,
  scoring, reasons (one what-if pass per signal), writing back (QA statuses, scores and
  reasons, the edges table). For each phase: wall seconds, CPU seconds and the RSS at its
  end; the process's peak RSS over the whole run.

CPU s = CPU time of the process; load = the 1-minute load average at the end: on a shared
machine wall time depends on what else runs, CPU time much less. AUC = the scores written
back against the planted corruption.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QAS_PER_FIGURE = 4.6
CHUNK_FIGURES = 20_000  # set-up writes the world a chunk of figures at a time


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_gb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


# ---------------------------------------------------------------------- set-up (not timed)


def _fill(name: str, n: int, columns: dict) -> object:
    """An Arrow table of `name`'s schema: `columns` as given, the rest their defaults."""
    from datetime import datetime

    import pyarrow as pa

    from store.schema import arrow_schema

    schema = arrow_schema(name)
    out = {}
    for field in schema:
        if field.name in columns:
            out[field.name] = pa.array(columns[field.name], field.type)
        elif field.name == "created_at":
            out[field.name] = pa.array([datetime(2026, 1, 1)] * n, field.type)
        elif field.nullable:
            out[field.name] = pa.nulls(n, field.type)
        else:
            out[field.name] = pa.array([""] * n, field.type)
    return pa.table(out, schema=schema)


def _write_chunk(store, c: int, data, kinds: list) -> int:
    """One chunk of the planted world into the store; returns its QA count."""
    import numpy as np

    inp = data.inputs
    pre = f"c{c:03d}-"
    qa_ids = np.array([pre + q for q in inp.qa_ids], dtype=object)
    fig_ids = np.array([pre + f for f in inp.figure_ids], dtype=object)
    cap_ids = np.array([pre + x for x in inp.caption_ids], dtype=object)
    n = inp.n_qa
    qa_fig = fig_ids[inp.qa_figure].tolist()
    store.append(
        "qas",
        _fill(
            "qas",
            n,
            {
                "qa_id": qa_ids.tolist(),
                "figure_id": qa_fig,
                "caption_id": cap_ids[inp.qa_caption].tolist(),
                "question": ["q"] * n,
                "answer": ["a"] * n,
                "task_type": ["caption"] * n,
                "origin": ["stage1"] * n,
                "status": ["pending"] * n,
            },
        ),
    )
    store.append(
        "captions",
        _fill(
            "captions",
            inp.n_captions,
            {
                "caption_id": cap_ids.tolist(),
                "figure_id": fig_ids[inp.caption_figure].tolist(),
                "text": ["caption"] * inp.n_captions,
            },
        ),
    )
    sig = inp.signals
    for j, name in enumerate(sig.names):
        rows = np.flatnonzero(sig.mask[:, j])
        if not len(rows):
            continue
        ids = qa_ids[rows].tolist()
        store.append(
            "signals",
            _fill(
                "signals",
                len(rows),
                {
                    "signal_id": [f"{q}:{name}" for q in ids],
                    "item_id": ids,
                    "figure_id": [qa_fig[r] for r in rows.tolist()],
                    "name": [name] * len(rows),
                    "value": sig.values[rows, j].astype(np.float64),
                    "available": [True] * len(rows),
                    "model": ["synthetic"] * len(rows),
                },
            ),
        )
    for node_type, ids in (("image", fig_ids), ("caption", cap_ids), ("qa", qa_ids)):
        for family, emb in inp.embeddings.get(node_type, {}).items():
            rows = np.flatnonzero(emb.mask)
            store.write_embeddings(
                f"{family}_{node_type}", ids[rows].tolist(), emb.vectors[rows], "synthetic"
            )
    kinds.append((qa_ids, data.kind))
    return n


def setup(args) -> None:
    """Generate the world chunk by chunk into a fresh store at `args.store`."""
    import numpy as np

    from microvqa_tui.pipeline.graph.synthetic import PlantConfig, plant_data
    from store import open_store

    clock, cpu0 = time.perf_counter(), _cpu_seconds()
    path = Path(args.store)
    if path.exists():
        shutil.rmtree(path)
    store = open_store(path, create=True)
    n_figures = max(2, round(args.setup / QAS_PER_FIGURE))
    kinds: list = []
    n_qa = 0
    for c, start in enumerate(range(0, n_figures, CHUNK_FIGURES)):
        cfg = PlantConfig(
            n_figures=min(CHUNK_FIGURES, n_figures - start),
            text_dim=args.text_dim,
            clip_dim=args.clip_dim,
            qa_clip=False,
            caption_clip=False,
            corrupt_fraction=0.1,
            seed=1000 * args.seed + c,
        )
        n_qa += _write_chunk(store, c, plant_data(cfg), kinds)
    ids = np.concatenate([k[0] for k in kinds]).astype(str)
    kind = np.concatenate([k[1] for k in kinds])
    np.savez(path / "planted_kinds.npz", ids=ids, kind=kind)
    result = {
        "qas": n_qa,
        "setup_s": round(time.perf_counter() - clock, 1),
        "setup_cpu_s": round(_cpu_seconds() - cpu0, 1),
        "setup_peak_rss_gb": round(_peak_rss_gb(), 2),
    }
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------- the product


class PhaseClock:
    """A progress reporter that notes wall, CPU and RSS at each phase `run_graph` starts."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float, float]] = []
        self.mark("start")

    def mark(self, name: str) -> None:
        self.marks.append((name, time.perf_counter(), _cpu_seconds(), _rss_gb()))

    def start(self, description: str, total: int | None) -> None:
        self.mark(description.removeprefix("graph: "))

    def advance(self, amount: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def phases(self) -> list[dict]:
        out = []
        for (name, t0, c0, _), (_, t1, c1, rss) in zip(self.marks, self.marks[1:], strict=False):
            out.append(
                {"phase": name, "wall_s": round(t1 - t0, 2), "cpu_s": round(c1 - c0, 2),
                 "rss_end_gb": round(rss, 2)}
            )  # fmt: skip
        return out


def run(args) -> None:
    import numpy as np
    import torch

    from microvqa_tui.config import Settings
    from microvqa_tui.config.graph import GraphSettings
    from microvqa_tui.pipeline.graph.knn import resolve_device
    from microvqa_tui.pipeline.graph.run import run_graph
    from microvqa_tui.pipeline.graph.train import roc_auc
    from store import open_store

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    store = open_store(args.run, create=False)
    settings = Settings(graph=GraphSettings(knn_k=args.knn_k, device=device.type))
    clock = PhaseClock()
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    report = run_graph(store, settings, progress=clock, force=True)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    clock.mark("end")
    peak = _peak_rss_gb()
    planted = np.load(Path(args.run) / "planted_kinds.npz")
    scores = store.arrow("qas", columns=["qa_id", "score"]).sort_by("qa_id")
    order = np.argsort(planted["ids"])
    clean = planted["kind"][order] == -1
    t = report.timings
    result = {
        "qas": report.qas,
        "edges": sum(v for k, v in report.metrics.items() if k.startswith("edges_")),
        "epochs": report.metrics.get("epochs_run"),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "timings": t,
        "phases": clock.phases(),
        "run_s": round(wall, 1),
        "run_cpu_s": round(cpu, 1),
        "peak_rss_gb": round(peak, 2),
        "load_1min": round(os.getloadavg()[0], 1),
        "auc": round(roc_auc(clean, scores.column("score").to_numpy()) or float("nan"), 4),
    }
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------- driver


def _child(args, flag: str, value: str, size: int) -> dict | None:
    cmd = [sys.executable, "-W", "ignore", __file__, flag, value, "--seed", str(args.seed)]
    cmd += ["--device", args.device, "--knn-k", str(args.knn_k), "--threads", str(args.threads)]
    cmd += ["--text-dim", str(args.text_dim), "--clip-dim", str(args.clip_dim)]
    if flag == "--setup":
        cmd += ["--store", str(args.workdir / f"scale_{size}")]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"    {size:,} QAs: {flag[2:]} over {args.timeout} s, stopped")
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        print(f"    {size:,} QAs: {flag[2:]} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def _print(rows: list[dict]) -> None:
    for r in rows:
        print(
            f"\n{r['qas']:,} QAs, {r['edges']:,} edges, {r['epochs']} epochs, {r['device']}, "
            f"{r['threads']} torch thread(s), load {r['load_1min']}"
        )
        print(
            f"  set-up (not the product): {r['setup_s']} s wall, {r['setup_cpu_s']} CPU s, "
            f"peak RSS {r['setup_peak_rss_gb']} GB"
        )
        print(
            f"  run graph: {r['run_s']} s wall, {r['run_cpu_s']} CPU s, peak RSS "
            f"{r['peak_rss_gb']} GB; AUC vs planted {r['auc']}"
        )
        print(f"  {'phase':<16}{'wall s':>9}{'CPU s':>9}{'RSS GB':>9}")
        for p in r["phases"]:
            print(f"  {p['phase']:<16}{p['wall_s']:>9}{p['cpu_s']:>9}{p['rss_end_gb']:>9}")
        inner = {k: v for k, v in r["timings"].items() if k in ("knn_s", "build_s", "filter_s")}
        print(f"  of which: {inner} (build_s includes knn_s; filter_s = reasons)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="QA counts")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    parser.add_argument("--knn-k", type=int, default=5)
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--clip-dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)"
    )
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per part and size")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/graph_scale"))
    parser.add_argument("--keep-stores", action="store_true", help="leave the stores on disk")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--setup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup(args)
        return
    if args.run:
        run(args)
        return
    rows = []
    for size in args.sizes:
        print(f"... {size:,} QAs: set-up", flush=True)
        made = _child(args, "--setup", str(size), size)
        if made is None:
            continue
        print(f"    set-up {made['setup_s']} s; run graph ...", flush=True)
        ran = _child(args, "--run", str(args.workdir / f"scale_{size}"), size)
        if not args.keep_stores:
            shutil.rmtree(args.workdir / f"scale_{size}", ignore_errors=True)
        if ran is None:
            continue
        rows.append({**made, **ran})
        print(f"    run graph {ran['run_s']} s", flush=True)
    _print(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
