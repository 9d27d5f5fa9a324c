"""All-pairs top-k neighbours for dedup: our blocked exact search and the LanceDB index,
next to a plain NumPy / torch brute force.

For each size N (default 10k and 100k; add 1M with `--sizes 10k,100k,1m`), 512-d clustered
embeddings (a Gaussian mixture, ~50 vectors per cluster, 1% planted near-copies — closer to
real CLIP/MiniLM embeddings than uniform noise, on which every ANN index fails) are searched
for each vector's top-10 neighbours (itself excluded). Reported per method: seconds, peak
extra memory (RSS above the data, measured in a fresh process per method), the speed ratio
to the plain brute force, and the recall@10 of the indexed path against the exact one.

Methods:
- `exact-blocked`: `exact_topk` (NumPy/BLAS on the CPU; torch on a CUDA GPU when present),
  score blocks of `--memory-mb`, bounded memory.
- `plain-numpy` / `plain-torch`: the whole N×N similarity matrix then argpartition/topk; run
  only where that matrix fits (N=100k needs 40 GB: reported as skipped).
- `lance-<INDEX>`: LanceDB vector index (IVF_HNSW_SQ by default, IVF_PQ with
  `--ann-index IVF_PQ`): build + multi-vector queries with refine. Recall is measured against
  the exact result (for sizes where exact was not run, on `--recall-sample` queries).

    python benchmarks/dedup.py                      # 10k, 100k on this machine
    python benchmarks/dedup.py --sizes 10k,100k,1m --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def make_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 50)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        assign = rng.integers(0, n_clusters, stop - start)
        out[start:stop] = centres[assign] + 0.6 * rng.standard_normal((stop - start, dim)).astype(
            np.float32
        )
    planted = rng.choice(n, size=n // 100, replace=False)
    sources = rng.integers(0, n, len(planted))
    out[planted] = out[sources] + 0.05 * rng.standard_normal((len(planted), dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- worker
def worker(method: str, n: int, dim: int, k: int, args: argparse.Namespace) -> dict:
    from microvqa_tui.pipeline.dedup.knn import AnnParams, ann_topk, exact_topk

    x = make_vectors(n, dim, args.seed)
    base_rss = rss_mb()
    result: dict = {"method": method, "n": n}
    started = time.perf_counter()
    if method in ("exact-blocked", "exact-blocked-gpu"):
        device = "cuda" if method.endswith("gpu") else "cpu"
        res = exact_topk(x, None, k, device=device, memory_mb=args.memory_mb, normalize=False)
        indices = res.indices
        result["device"] = res.device
    elif method == "plain-numpy":
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        indices = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        del sims
    elif method == "plain-torch":
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        xt = torch.from_numpy(x).to(dev)
        sims = xt @ xt.T
        sims.fill_diagonal_(-float("inf"))
        indices = torch.topk(sims, k, dim=1).indices.cpu().numpy()
        result["device"] = dev
        if dev == "cuda":
            result["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        del sims
    elif method.startswith("lance-"):
        index = method.split("-", 1)[1]
        sample = min(n, args.ann_sample) if args.ann_sample else n
        rows = (
            np.sort(np.random.default_rng(1).choice(n, size=sample, replace=False))
            if sample < n
            else None
        )
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            params = AnnParams(index_type=index, query_batch=args.query_batch)
            res = ann_topk(x, k, params=params, workdir=tmp, query_rows=rows)
        indices = res.indices
        result.update(res.timings)
        result["queried"] = sample
        if rows is not None:  # all-pairs time extrapolated from the sampled queries
            result["all_pairs_s_est"] = round(
                res.timings["build_s"] + res.timings["query_s"] * n / sample, 1
            )
    else:
        raise SystemExit(f"unknown method {method}")
    if method == "exact-blocked-gpu":
        import torch

        result["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_extra_mb"] = round(max(0.0, peak_mb() - base_rss), 1)
    np.save(args.out_indices, np.asarray(indices, np.int64))
    return result


def run_worker(
    method: str, n: int, args: argparse.Namespace, timeout: float | None
) -> tuple[dict, np.ndarray | None]:
    with tempfile.NamedTemporaryFile(suffix=".npy", dir=args.workdir, delete=False) as handle:
        out = handle.name
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--n",
        str(n),
        "--dim",
        str(args.dim),
        "--k",
        str(args.k),
        "--memory-mb",
        str(args.memory_mb),
        "--seed",
        str(args.seed),
        "--query-batch",
        str(args.query_batch),
        "--out-indices",
        out,
        "--ann-sample",
        str(args.ann_sample),
    ] + (["--workdir", args.workdir] if args.workdir else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.unlink(out)
        return {"method": method, "n": n, "skipped": f"over the {timeout:.0f} s limit"}, None
    if proc.returncode != 0:
        os.unlink(out)
        return {
            "method": method,
            "n": n,
            "error": proc.stderr.strip().splitlines()[-1:] or ["failed"],
        }, None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    indices = np.load(out)
    os.unlink(out)
    return result, indices


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approx, exact, strict=True))
    return round(hits / max(1, int((exact >= 0).sum())), 4)


def sampled_exact(n: int, args: argparse.Namespace, rows: np.ndarray) -> np.ndarray:
    """Exact top-k of a sample of queries (for recall where full exact was not run)."""
    from microvqa_tui.pipeline.dedup.knn import exact_topk

    x = make_vectors(n, args.dim, args.seed)
    groups = np.arange(n)
    return exact_topk(
        x[rows],
        x,
        args.k,
        query_groups=groups[rows],
        base_groups=groups,
        normalize=False,
        device="cpu",
    ).indices


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10k,100k")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--ann-index", default="IVF_HNSW_SQ", choices=["IVF_HNSW_SQ", "IVF_PQ"])
    parser.add_argument("--query-batch", type=int, default=1024)
    parser.add_argument(
        "--skip-exact-above",
        default="200k",
        help="CPU exact all-pairs only up to this size (recall then on a sample).",
    )
    parser.add_argument("--recall-sample", type=int, default=2000)
    parser.add_argument(
        "--ann-sample",
        type=int,
        default=20_000,
        help="Query the index with this many vectors (all when 0 or N is smaller) and extrapolate the all-pairs time.",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds per method run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", dest="json_out", default=None)
    # internal: one measurement in a fresh process
    parser.add_argument("--worker", default=None)
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--out-indices", default=None)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.dim, args.k, args)))
        return

    from microvqa_tui.pipeline.dedup.knn import cuda_available

    gpu = cuda_available()
    free_mb = _available_mb()
    skip_exact_above = parse_size(args.skip_exact_above)
    rows_out = []
    print(
        f"dedup kNN benchmark: dim {args.dim}, k {args.k}, CPU cores {os.cpu_count()}, GPU {'yes' if gpu else 'no'}, "
        f"{free_mb / 1024:.1f} GiB free; index {args.ann_index}"
    )
    for n in (parse_size(s) for s in args.sizes.split(",")):
        results: dict[str, dict] = {}
        exact_idx = None
        methods = []
        plain_bytes = n * n * 4 * 2.2
        if plain_bytes / 2**20 < free_mb * 0.7:
            methods.append("plain-numpy")
        else:
            results["plain-numpy"] = {
                "method": "plain-numpy",
                "n": n,
                "skipped": f"N×N matrix needs {plain_bytes / 2**30:.0f} GiB",
            }
        if gpu:
            methods += ["plain-torch", "exact-blocked-gpu"]
        if n <= skip_exact_above:
            methods.append("exact-blocked")
        else:
            results["exact-blocked"] = {
                "method": "exact-blocked",
                "n": n,
                "skipped": f"CPU exact above {skip_exact_above:,}",
            }
        methods.append(f"lance-{args.ann_index}")
        for method in methods:
            print(f"  N={n:,} {method} ...", flush=True)
            result, idx = run_worker(method, n, args, args.timeout)
            results[method] = result
            if (
                idx is not None
                and method in ("exact-blocked", "exact-blocked-gpu", "plain-numpy")
                and exact_idx is None
            ):
                exact_idx = idx
            if idx is not None and method.startswith("lance-"):
                queried = np.nonzero((idx >= 0).any(axis=1))[0]
                if exact_idx is not None:
                    result["recall@k"] = recall(idx[queried], exact_idx[queried])
                else:
                    rows = np.random.default_rng(1).choice(
                        queried, size=min(args.recall_sample, len(queried)), replace=False
                    )
                    result["recall@k"] = recall(idx[rows], sampled_exact(n, args, rows))
                    result["recall_on"] = f"{len(rows)} sampled queries"
        plain = results.get("plain-numpy", {}).get("seconds")
        plain_gpu = results.get("plain-torch", {}).get("seconds")
        exact_s = results.get("exact-blocked", {}).get("seconds")
        for result in results.values():
            seconds = result.get("all_pairs_s_est", result.get("seconds"))
            if seconds:
                ref = plain_gpu if result.get("device") == "cuda" and plain_gpu else plain
                result["speedup_vs_plain"] = round(ref / seconds, 2) if ref else None
                result["speedup_vs_exact_blocked"] = (
                    round(exact_s / seconds, 2) if exact_s else None
                )
        rows_out.extend(results.values())
        _print_table(n, results)
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"dim": args.dim, "k": args.k, "gpu": gpu, "results": rows_out}, indent=2)
        )


def _available_mb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().available / 2**20
    except ImportError:
        return 8 * 1024.0


def _print_table(n: int, results: dict[str, dict]) -> None:
    print(f"\nN = {n:,}")
    print(f"  {'method':<22}{'seconds':>10}{'peak MB':>10}{'× plain':>9}{'recall@k':>10}  note")
    for name, r in results.items():
        seconds = f"{r['seconds']:.2f}" if "seconds" in r else "-"
        peak = f"{r['peak_extra_mb']:.0f}" if "peak_extra_mb" in r else "-"
        ratio = f"{r['speedup_vs_plain']:.2f}" if r.get("speedup_vs_plain") else "-"
        rec = f"{r['recall@k']:.3f}" if "recall@k" in r else "-"
        note = r.get("skipped") or r.get("error") or r.get("recall_on") or r.get("device", "")
        if "build_s" in r:
            note = f"build {r['build_s']:.1f} s + {r['queried']:,} queries {r['query_s']:.1f} s"
            if "all_pairs_s_est" in r:
                note += f"; all {r['n']:,} ≈ {r['all_pairs_s_est']:.0f} s"
        if "gpu_peak_mb" in r:
            note = f"{note} (GPU peak {r['gpu_peak_mb']:.0f} MB)"
        print(f"  {name:<22}{seconds:>10}{peak:>10}{ratio:>9}{rec:>10}  {note}")
    print(flush=True)


if __name__ == "__main__":
    main()
