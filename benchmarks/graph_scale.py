"""Scale of the HiCQA-Graph: build + training + scoring time and peak memory per QA count.

    python benchmarks/graph_scale.py                              # 10k and 100k QAs
    python benchmarks/graph_scale.py --sizes 1000000 --device cuda
    python benchmarks/graph_scale.py --sizes 10000 --epochs 20 --threads 1

Synthetic inputs shaped like a real store: ~4.6 QAs per figure (1-2 captions per figure,
2-6 QAs per caption), CLIP image embeddings (512-d), MiniLM caption and QA embeddings
(384-d), the eight signals with their missing shares. Each size runs in its own
subprocess, so peak memory is that size's alone: peak RSS of the process (the synthetic
inputs included; their own size is shown beside it) and, on CUDA, the peak GPU memory
allocated by torch.

CPU s = the CPU time the process spent end to end, and load = the machine's 1-minute load
average at the end: on a shared machine wall time depends on what else runs.

End to end = corrupt + build (k-NN included) + labels + training + scoring + filter with
reasons (one what-if pass per signal). Data generation is not counted. Training runs the
settings' epochs with early stopping unless --epochs fixes the count (patience = epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QAS_PER_FIGURE = 4.6


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): on a shared machine, the work done."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args) -> None:
    import numpy as np
    import torch

    from microvqa_tui.config.graph import GraphSettings
    from microvqa_tui.pipeline.graph.knn import resolve_device
    from microvqa_tui.pipeline.graph.pipeline import fit_and_filter
    from microvqa_tui.pipeline.graph.synthetic import planted

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    clock = time.perf_counter()
    data = planted(
        max(2, round(args.child / QAS_PER_FIGURE)),
        text_dim=args.text_dim,
        clip_dim=args.clip_dim,
        qa_clip=False,
        caption_clip=False,
        seed=0,
    )
    gen_s = time.perf_counter() - clock
    inputs = data.inputs
    input_bytes = sum(
        e.vectors.nbytes for fams in inputs.embeddings.values() for e in fams.values()
    )
    input_bytes += inputs.signals.values.nbytes * 2
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    update = {"knn_k": args.knn_k, "device": device.type}
    if args.epochs:
        update |= {"epochs": args.epochs, "patience": args.epochs}
    settings = GraphSettings(**update)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    clock = time.perf_counter()
    cpu_before = _cpu_seconds()
    outcome = fit_and_filter(inputs, settings, device=device)
    cpu = _cpu_seconds() - cpu_before
    if device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - clock
    data_g = outcome.graph.data
    edges = sum(int(data_g[r].edge_index.shape[1]) for r in data_g.edge_types)
    nodes = sum(int(data_g[t].num_nodes) for t in data_g.node_types)
    t = outcome.timings
    epochs = outcome.metrics["epochs_run"]
    result = {
        "qas": inputs.n_qa,
        "nodes": nodes,
        "edges": edges,
        "device": str(device)
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
        "threads": torch.get_num_threads(),
        "generate_s": round(gen_s, 2),
        "knn_s": t.get("knn_s", 0.0),
        "build_s": t["build_s"],
        "train_s": t["train_s"],
        "epochs": epochs,
        "epoch_s": round(t["train_s"] / max(epochs, 1), 3),
        "score_s": t["score_s"],
        "filter_s": t["filter_s"],
        "total_s": round(total, 2),
        "cpu_s": round(cpu, 1),
        "load_1min": round(os.getloadavg()[0], 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 2),
        "inputs_gb": round(input_bytes / 2**30, 2),
        "rss_after_inputs_gb": round(rss_inputs / 2**30, 2),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.type == "cuda"
        else None,
        "kept": int(outcome.filtered.n_kept),
        "val_auc": outcome.metrics.get("val_auc"),
        "score_auc_vs_planted": None,
    }
    from microvqa_tui.pipeline.graph.train import roc_auc

    result["score_auc_vs_planted"] = round(
        roc_auc(data.consistent, outcome.scores) or float("nan"), 4
    )
    del np
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="QA counts")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--epochs", type=int, default=0, help="fixed epoch count (0 = settings + early stop)"
    )
    parser.add_argument("--knn-k", type=int, default=5)
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--clip-dim", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)"
    )
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per size")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    rows = []
    for size in args.sizes:
        cmd = [
            sys.executable,
            "-W",
            "ignore",
            __file__,
            "--child",
            str(size),
            "--device",
            args.device,
        ]
        cmd += [
            "--epochs",
            str(args.epochs),
            "--knn-k",
            str(args.knn_k),
            "--threads",
            str(args.threads),
        ]
        cmd += ["--text-dim", str(args.text_dim), "--clip-dim", str(args.clip_dim)]
        print(f"... {size:,} QAs", flush=True)
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout, env=os.environ.copy()
            )
        except subprocess.TimeoutExpired:
            print(f"    {size:,} QAs: over {args.timeout} s, stopped")
            continue
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            print(f"    {size:,} QAs failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
            continue
        row = json.loads(lines[-1][len("RESULT ") :])
        rows.append(row)
        print(f"    done in {row['total_s']} s", flush=True)
    if not rows:
        return
    cols = [
        ("qas", "QAs", "{:,}"),
        ("nodes", "nodes", "{:,}"),
        ("edges", "edges", "{:,}"),
        ("knn_s", "k-NN s", "{}"),
        ("build_s", "build s", "{}"),
        ("train_s", "train s", "{}"),
        ("epochs", "epochs", "{}"),
        ("epoch_s", "s/epoch", "{}"),
        ("score_s", "score s", "{}"),
        ("filter_s", "filter s", "{}"),
        ("total_s", "total s", "{}"),
        ("cpu_s", "CPU s", "{}"),
        ("load_1min", "load", "{}"),
        ("peak_rss_gb", "peak RSS GB", "{}"),
        ("inputs_gb", "inputs GB", "{}"),
        ("peak_gpu_gb", "peak GPU GB", "{}"),
        ("score_auc_vs_planted", "AUC", "{}"),
    ]
    cells = [
        [fmt.format(r[key]) if r[key] is not None else "-" for key, _, fmt in cols] for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h, _) in enumerate(cols)]
    print()
    print(f"device: {rows[0]['device']}, torch threads: {rows[0]['threads']}, k = {args.knn_k}")
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(cols, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
    print(
        "(build includes k-NN; total = build + labels + train + score + filter; data generation excluded)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
