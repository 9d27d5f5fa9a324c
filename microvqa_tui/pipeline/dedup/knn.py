"""k-nearest-neighbour search for deduplication.

Two paths, one result type (`Neighbours`):

- `exact_topk`: exact cosine top-k by blocked matrix products. Memory is bounded by
  `memory_mb` whatever the size (one query block × one base block of scores at a time, merged
  into a running top-k). On a CUDA GPU it runs in torch (fp32, TF32 off: exact); on the CPU in
  NumPy/BLAS.
- `ann_topk`: LanceDB's vector index (IVF_PQ or IVF_HNSW_SQ, cosine) with a refine step that
  re-ranks candidates by exact distance. For large stores on the CPU, where exact all-pairs
  search is quadratic; small stores always use the exact path (`choose_method`).

Both can exclude pairs of the same "group" (an item's own vectors; for image hashes, the
crop windows of one image), so a search never reports an item as its own neighbour.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

# Above this many vectors, an all-pairs search on the CPU goes through the LanceDB index
# (exact all-pairs is N² · d: ~2 min at 100k × 512-d on 2 cores, hours at 1M).
ANN_MIN_ROWS_CPU = 200_000
# Bytes of working memory per score-matrix element on the CPU path: the float32 score, the
# int64 indices argpartition returns, and the group mask.
_CPU_BYTES_PER_SCORE = 4 + 8 + 1


@dataclass
class Neighbours:
    """Top-k neighbours of each query: `indices[i, j]` is a row of the base (-1 = none) and
    `scores[i, j]` its cosine similarity (-inf = none), best first."""

    scores: np.ndarray
    indices: np.ndarray
    method: str
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)

    def pairs(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, base row, similarity) of every neighbour at or above `threshold`."""
        mask = (self.indices >= 0) & (self.scores >= threshold)
        rows, cols = np.nonzero(mask)
        return rows, self.indices[rows, cols], self.scores[rows, cols]


# ---------------------------------------------------------------------------- helpers
def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as contiguous float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def _no_nvidia_device() -> bool:
    """True when this is Linux and no NVIDIA device node exists: torch (seconds to import)
    cannot see a GPU then, so it is not imported just to ask."""
    import os
    import sys

    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return False
    return not any(
        os.path.exists(p)
        for p in ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg")
    )


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU. Never raises (a broken torch means: no GPU)."""
    if _no_nvidia_device():
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pick_device(device: str = "auto") -> str:
    """'cuda' or 'cpu' for a settings value 'auto' | 'cpu' | 'cuda'. ('torch-cpu' runs the
    torch code path on the CPU: for tests and benchmarks of that path without a GPU.)"""
    if device in ("cpu", "torch-cpu"):
        return device
    if device == "cuda":
        return "cuda" if cuda_available() else "cpu"
    return "cuda" if cuda_available() else "cpu"


def choose_method(
    n: int, device: str, method: str = "auto", ann_min_rows: int = ANN_MIN_ROWS_CPU
) -> str:
    """'exact' or 'ann' for an all-pairs search over `n` vectors.

    auto: exact on a GPU (fast enough for millions), exact on the CPU below `ann_min_rows`,
    the LanceDB index above it.
    """
    if method in ("exact", "ann"):
        return method
    if device == "cuda" or n < ann_min_rows:
        return "exact"
    return "ann"


def _groups(n: int, groups: np.ndarray | None, default_self: bool) -> np.ndarray | None:
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        if len(groups) != n:
            raise ValueError(f"groups has {len(groups)} entries for {n} vectors")
        return groups
    return np.arange(n, dtype=np.int64) if default_self else None


# ---------------------------------------------------------------------------- exact
def exact_topk(
    queries: np.ndarray,
    base: np.ndarray | None = None,
    k: int = 10,
    *,
    query_groups: np.ndarray | None = None,
    base_groups: np.ndarray | None = None,
    device: str = "auto",
    memory_mb: int = 256,
    normalize: bool = True,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> Neighbours:
    """Exact cosine top-k of every query among `base` (all-pairs when `base` is None).

    Pairs whose query and base rows share a group id are skipped; in all-pairs mode the
    default groups are the row numbers, so nobody is their own neighbour.
    """
    self_search = base is None
    q = normalize_rows(queries) if normalize else np.ascontiguousarray(queries, np.float32)
    # Without normalize, an int8/float16 base stays compact and is widened per block.
    if not self_search:
        base = normalize_rows(base) if normalize else np.ascontiguousarray(base)
    b = q if self_search else base
    # All-pairs without explicit groups: only the diagonal is masked (cheaper than a mask).
    diagonal = self_search and query_groups is None and base_groups is None
    qg = _groups(len(q), query_groups, False)
    bg = _groups(len(b), base_groups, False)
    if (qg is None) != (bg is None):
        raise ValueError("query_groups and base_groups go together")
    k = max(0, min(k, len(b)))
    if len(q) == 0 or k == 0:
        return Neighbours(
            np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64), "exact"
        )
    dev = pick_device(device)
    progress = progress or NullProgress()
    if dev in ("cuda", "torch-cpu"):
        return _exact_topk_torch(q, b, k, qg, bg, diagonal, memory_mb, progress, cancel, dev)
    return _exact_topk_numpy(q, b, k, qg, bg, diagonal, memory_mb, progress, cancel)


def _block_sizes(
    nq: int, nb: int, k: int, budget_bytes: int, bytes_per: int, max_q: int
) -> tuple[int, int]:
    elements = max(budget_bytes // bytes_per, 1)
    bq = max(1, min(nq, max_q))
    bb = max(k, min(nb, elements // bq))
    return bq, bb


def _merge_numpy(best_s, best_i, cand_s, cand_i, k):
    scores = np.concatenate([best_s, cand_s], axis=1)
    index = np.concatenate([best_i, cand_i], axis=1)
    if scores.shape[1] > k:
        keep = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        scores = np.take_along_axis(scores, keep, axis=1)
        index = np.take_along_axis(index, keep, axis=1)
    return scores, index


def _mask_diagonal(sims, q0: int, b0: int) -> None:
    """Set sims[i, j] = -inf where query row q0+i is base row b0+j (works for numpy and torch)."""
    lo, hi = max(q0, b0), min(q0 + sims.shape[0], b0 + sims.shape[1])
    if lo < hi:
        rows = np.arange(lo, hi)
        sims[rows - q0, rows - b0] = -np.inf


def _exact_topk_numpy(q, b, k, qg, bg, diagonal, memory_mb, progress, cancel) -> Neighbours:
    nq, nb = len(q), len(b)
    bq, bb = _block_sizes(nq, nb, k, memory_mb << 20, _CPU_BYTES_PER_SCORE, 1024)
    scores_out = np.empty((nq, k), np.float32)
    index_out = np.empty((nq, k), np.int64)
    progress.start("nearest neighbours (exact, CPU)", nq)
    for q0 in range(0, nq, bq):
        if cancel is not None:
            cancel.check()
        q1 = min(q0 + bq, nq)
        block = q[q0:q1]
        best_s = np.full((q1 - q0, 0), -np.inf, np.float32)
        best_i = np.full((q1 - q0, 0), -1, np.int64)
        for b0 in range(0, nb, bb):
            b1 = min(b0 + bb, nb)
            sims = block @ b[b0:b1].astype(np.float32, copy=False).T
            if diagonal:
                _mask_diagonal(sims, q0, b0)
            elif qg is not None:
                sims[qg[q0:q1, None] == bg[None, b0:b1]] = -np.inf
            kk = min(k, b1 - b0)
            if sims.shape[1] > kk:
                part = np.argpartition(sims, sims.shape[1] - kk, axis=1)[:, -kk:]
                part_s = np.take_along_axis(sims, part, axis=1)
            else:
                part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
                part_s = sims
            best_s, best_i = _merge_numpy(best_s, best_i, part_s, part + b0, k)
        order = np.argsort(-best_s, axis=1, kind="stable")
        best_s = np.take_along_axis(best_s, order, axis=1)
        best_i = np.take_along_axis(best_i, order, axis=1)
        best_i[~np.isfinite(best_s)] = -1
        scores_out[q0:q1] = best_s
        index_out[q0:q1] = best_i
        progress.advance(q1 - q0)
    return Neighbours(scores_out, index_out, "exact", "cpu")


def _exact_topk_torch(
    q, b, k, qg, bg, diagonal, memory_mb, progress, cancel, device="cuda"
) -> Neighbours:
    import torch

    on_gpu = device == "cuda"
    dev = torch.device("cuda" if on_gpu else "cpu")
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 products
        free, _total = torch.cuda.mem_get_info(dev)
    else:
        free = 4 * (memory_mb << 20)
    # Keep the base resident when it takes under half the free memory; else stream it.
    resident = b.nbytes < free // 2
    base_gpu = torch.from_numpy(b).to(dev) if resident else None
    budget = max(memory_mb << 20, int((free - (b.nbytes if resident else 0)) * 0.25))
    bq, bb = _block_sizes(len(q), len(b), k, budget, 4 + 4 + 1, 8192)
    qg_t = torch.from_numpy(qg).to(dev) if qg is not None else None
    bg_t = torch.from_numpy(bg).to(dev) if bg is not None else None
    scores_out = np.empty((len(q), k), np.float32)
    index_out = np.empty((len(q), k), np.int64)
    progress.start(f"nearest neighbours (exact, {'GPU' if on_gpu else 'torch CPU'})", len(q))
    with torch.inference_mode():
        for q0 in range(0, len(q), bq):
            if cancel is not None:
                cancel.check()
            q1 = min(q0 + bq, len(q))
            block = torch.from_numpy(q[q0:q1]).to(dev, non_blocking=True)
            best_s = torch.full((q1 - q0, 0), -float("inf"), device=dev)
            best_i = torch.full((q1 - q0, 0), -1, dtype=torch.int64, device=dev)
            for b0 in range(0, len(b), bb):
                b1 = min(b0 + bb, len(b))
                chunk = (
                    base_gpu[b0:b1] if base_gpu is not None else torch.from_numpy(b[b0:b1]).to(dev)
                ).float()  # an int8 base is widened per block
                sims = block @ chunk.T
                if diagonal:
                    lo, hi = max(q0, b0), min(q1, b1)
                    if lo < hi:
                        idx = torch.arange(lo, hi, device=dev)
                        sims[idx - q0, idx - b0] = -float("inf")
                elif qg_t is not None:
                    sims.masked_fill_(qg_t[q0:q1, None] == bg_t[None, b0:b1], -float("inf"))
                kk = min(k, b1 - b0)
                part_s, part_i = torch.topk(sims, kk, dim=1)
                cat_s = torch.cat([best_s, part_s], dim=1)
                cat_i = torch.cat([best_i, part_i + b0], dim=1)
                best_s, sel = torch.topk(cat_s, min(k, cat_s.shape[1]), dim=1)
                best_i = torch.gather(cat_i, 1, sel)
                del sims
            best_i[~torch.isfinite(best_s)] = -1
            scores_out[q0:q1] = best_s.cpu().numpy()
            index_out[q0:q1] = best_i.cpu().numpy()
            progress.advance(q1 - q0)
    return Neighbours(scores_out, index_out, "exact", "cuda" if on_gpu else "torch-cpu")


# ---------------------------------------------------------------------------- LanceDB ANN
@dataclass
class AnnParams:
    index_type: str = "IVF_PQ"  # IVF_PQ | IVF_HNSW_SQ
    num_partitions: int | None = None  # default: ~sqrt(n)
    num_sub_vectors: int | None = None  # IVF_PQ only; default: dim / 8
    nprobes: int | None = None  # default: ~6% of the partitions, at least 8
    refine_factor: int = 10  # re-rank k × refine_factor candidates by exact distance
    ef: int | None = None  # IVF_HNSW_SQ search breadth; default 1.5 × k × refine_factor, ≥ 64
    hnsw_m: int = 16  # IVF_HNSW_SQ graph degree
    ef_construction: int = 120  # IVF_HNSW_SQ build breadth
    query_batch: int = 512


def _index_config(params: AnnParams, n: int, dim: int):
    from lancedb.index import IvfHnswSq, IvfPq

    partitions = params.num_partitions or max(1, min(4096, int(np.sqrt(n) + 0.5)))
    if params.index_type.upper() == "IVF_HNSW_SQ":
        partitions = params.num_partitions or max(1, min(1024, n // 4096 or 1))
        config = IvfHnswSq(
            distance_type="cosine",
            num_partitions=partitions,
            m=params.hnsw_m,
            ef_construction=params.ef_construction,
        )
        return config, partitions
    sub = params.num_sub_vectors or next(
        s for s in (dim // 8, dim // 4, dim // 2, dim, 1) if s and dim % s == 0
    )
    return IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub), partitions


def ensure_vector_index(tbl: Any, params: AnnParams, *, column: str = "vector") -> dict[str, Any]:
    """Create the cosine vector index on `tbl` when it has none (or when over a tenth of the
    rows are not indexed yet); returns what was done."""
    n = tbl.count_rows()
    dim = tbl.schema.field(column).type.list_size
    existing = [idx for idx in tbl.list_indices() if column in getattr(idx, "columns", [])]
    if existing:
        try:
            stats = tbl.index_stats(existing[0].name)
            unindexed = getattr(stats, "num_unindexed_rows", 0) or 0
        except Exception:
            unindexed = n
        if unindexed <= n // 10:
            return {"index": existing[0].name, "created": False}
    config, partitions = _index_config(params, n, dim)
    tbl.create_index(column, config=config, replace=True)
    return {"index": params.index_type, "created": True, "partitions": partitions}


def ann_topk(
    vectors: np.ndarray,
    k: int = 10,
    *,
    params: AnnParams | None = None,
    workdir: Path | str | None = None,
    table: Any = None,
    table_ids: list[str] | None = None,
    id_column: str = "item_id",
    groups: np.ndarray | None = None,
    query_rows: np.ndarray | None = None,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> Neighbours:
    """Approximate all-pairs cosine top-k through a LanceDB vector index.

    Without `table`, the vectors go to a temporary LanceDB table under `workdir` (removed
    afterwards). With `table` (e.g. the store's `emb_clip_image`), its index is created when
    missing and reused; `table_ids[i]` is the `id_column` value of `vectors[i]`.
    Rows sharing a `groups` id (default: the row itself) are not reported as neighbours.
    `query_rows` limits the queries to those rows (the others stay empty); timings of the
    index build and of the queries are in `Neighbours.timings`.
    """
    params = params or AnnParams()
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    progress = progress or NullProgress()
    vectors = normalize_rows(vectors)
    n, dim = vectors.shape
    groups = _groups(n, groups, True)
    k = max(0, min(k, n - 1))
    scores_out = np.full((n, k), -np.inf, np.float32)
    index_out = np.full((n, k), -1, np.int64)
    if n == 0 or k == 0:
        return Neighbours(scores_out, index_out, f"ann-{params.index_type}")
    tmp: str | None = None
    try:
        if table is None:
            tmp = tempfile.mkdtemp(prefix=".dedup-ann-", dir=str(workdir) if workdir else None)
            table, table_ids = _temp_vector_table(tmp, vectors, id_column), None
        elif table_ids is None or len(table_ids) != n:
            raise ValueError("table_ids must give the id of every vector")
        position = {item: i for i, item in enumerate(table_ids or np.arange(n).astype(str))}
        progress.start(f"building the {params.index_type} index", None)
        ensure_vector_index(table, params)
        _config, partitions = _index_config(params, n, dim)
        nprobes = params.nprobes or max(8, int(np.ceil(partitions * 0.06)))
        # Same-group rows can crowd the top of a list; ask for enough extra to drop them.
        same = np.bincount(groups).max() if len(groups) else 1
        fetch = k + int(same)
        timings["build_s"] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()
        rows = np.arange(n) if query_rows is None else np.asarray(query_rows, np.int64)
        progress.start(f"nearest neighbours ({params.index_type})", len(rows))
        for q0 in range(0, len(rows), params.query_batch):
            if cancel is not None:
                cancel.check()
            batch_rows = rows[q0 : q0 + params.query_batch]
            query = _ann_query(table, vectors[batch_rows], params, fetch, nprobes)
            result = query.select([id_column, "_distance"]).to_arrow()
            _fill_rows(result, id_column, position, groups, batch_rows, k, scores_out, index_out)
            progress.advance(len(batch_rows))
        timings["query_s"] = round(time.perf_counter() - clock, 3)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return Neighbours(scores_out, index_out, f"ann-{params.index_type}", "cpu", timings)


def _temp_vector_table(folder: str, vectors: np.ndarray, id_column: str) -> Any:
    """A scratch LanceDB table of `vectors`, row i having id str(i)."""
    import lancedb
    import pyarrow as pa

    n, dim = vectors.shape
    data = pa.table(
        {
            id_column: pa.array(np.arange(n).astype(str)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
    )
    return lancedb.connect(folder).create_table("vectors", data)


def _ann_query(table: Any, queries: np.ndarray, params: AnnParams, fetch: int, nprobes: int) -> Any:
    """One multi-vector index query asking for `fetch` candidates per vector."""
    query = table.search(list(queries), vector_column_name="vector")
    query = query.distance_type("cosine").limit(fetch).nprobes(nprobes)
    if params.refine_factor:
        query = query.refine_factor(params.refine_factor)
    if params.index_type.upper().startswith("IVF_HNSW"):
        # the index is asked for fetch × refine_factor candidates: ef must cover them
        wanted = fetch * max(1, params.refine_factor)
        query = query.ef(max(params.ef or 0, 64, wanted + wanted // 2))
    return query


def _fill_rows(result, id_column, position, groups, batch_rows, k, scores_out, index_out) -> None:
    """Copy one multi-vector query's results into the output rows `batch_rows`."""
    qidx = (
        result.column("query_index").to_numpy()
        if "query_index" in result.column_names
        else np.zeros(result.num_rows, np.int64)
    )
    ids = result.column(id_column).to_pylist()
    dist = result.column("_distance").to_numpy(zero_copy_only=False)
    filled: dict[int, int] = {}
    for qi, item, d in zip(qidx, ids, dist, strict=True):
        row = int(batch_rows[int(qi)])
        j = position.get(item, -1) if isinstance(position, dict) else position(item)
        slot = filled.get(row, 0)
        if j < 0 or groups[j] == groups[row] or slot >= k:
            continue
        scores_out[row, slot] = 1.0 - float(d)
        index_out[row, slot] = j
        filled[row] = slot + 1
    # LanceDB returns each query's results best first; keep them sorted anyway.
    for row in filled:
        order = np.argsort(-scores_out[row], kind="stable")
        scores_out[row] = scores_out[row][order]
        index_out[row] = index_out[row][order]


def all_pairs_topk(
    vectors: np.ndarray,
    k: int = 10,
    *,
    method: str = "auto",
    device: str = "auto",
    groups: np.ndarray | None = None,
    ann: AnnParams | None = None,
    ann_min_rows: int = ANN_MIN_ROWS_CPU,
    workdir: Path | str | None = None,
    memory_mb: int = 256,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> Neighbours:
    """All-pairs top-k, exact or indexed as `choose_method` decides."""
    dev = pick_device(device)
    chosen = choose_method(len(vectors), dev, method, ann_min_rows)
    if chosen == "ann":
        return ann_topk(
            vectors, k, params=ann, workdir=workdir, groups=groups, progress=progress, cancel=cancel
        )
    return exact_topk(
        vectors,
        None,
        k,
        query_groups=groups,
        base_groups=groups,
        device=dev,
        memory_mb=memory_mb,
        progress=progress,
        cancel=cancel,
    )
