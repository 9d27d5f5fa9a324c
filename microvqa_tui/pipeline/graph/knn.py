"""Exact k-nearest neighbours by cosine similarity, in blocks so memory stays bounded.

Queries are processed a block of rows at a time against a block of columns at a time, with
a running top-k merged after each column block: memory is `rows x cols` floats whatever the
number of items. On CUDA the matrix products run on the GPU: a TF32 pass finds candidates,
an fp32 pass reranks them (see `knn`).
"""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`auto`/None -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but torch sees no GPU")
    return resolved


def block_sizes(n: int, memory_mb: int) -> tuple[int, int]:
    """Row and column block sizes whose similarity block (and its top-k work) fits `memory_mb`."""
    budget = max(memory_mb, 1) * 1024 * 1024 // 8  # floats; x2 headroom for top-k temporaries
    cols = max(1, min(n, 65536))
    rows = max(1, min(n, budget // cols, 8192))
    return rows, cols


EXACT_MAX_ROWS = 20_000  # above this, exact search (m^2 d) gives way to an inverted file
IVF_PROBE = 6  # lists each list's rows search (their own included)
RERANK_EXTRA = 16  # extra candidates kept by the fast (TF32) pass, reranked in full fp32
REDUCED_EXTRA = 4  # extra candidates of the reduced-dimension search, reranked in full
CUDA_MIN_BLOCK_MB = 2048


@torch.no_grad()
def knn(
    vectors: np.ndarray | torch.Tensor,
    k: int,
    *,
    valid: np.ndarray | torch.Tensor | None = None,
    device: str | torch.device | None = "cpu",
    memory_mb: int = 256,
    block: tuple[int, int] | None = None,
    fast: bool | None = None,
    approximate: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most cosine-similar other rows of each row.

    Exact up to `EXACT_MAX_ROWS` valid rows; above (or with `approximate`) an inverted-file
    search (`_ivf_search`) whose cost grows as m^1.5 instead of m^2, over the top principal
    components of wide vectors, with an exact rerank (`_reduced_ivf_search`).

    Returns `(index, similarity)`, both (N, k), sorted by decreasing similarity; rows that are
    not `valid` (e.g. no embedding) neither get nor are neighbours, and missing slots (fewer
    than k+1 valid rows) hold index -1 and similarity 0. `block` = (rows, cols) overrides the
    block sizes derived from `memory_mb` (at least 2 GiB on CUDA).

    `fast` (default: on CUDA) finds `k + 16` candidates with TF32 matrix products, then
    reranks them with exact fp32 dot products: the same neighbours as the plain fp32 pass
    unless a true neighbour falls more than 16 places in TF32 rounding (similarities within
    ~1e-3 of each other), and the similarities returned are always exact fp32.
    """
    x = torch.as_tensor(vectors, dtype=torch.float32)
    n = x.shape[0]
    index = np.full((n, max(k, 0)), -1, dtype=np.int64)
    sims = np.zeros((n, max(k, 0)), dtype=np.float32)
    if k <= 0 or n == 0:
        return index, sims
    ok = torch.linalg.vector_norm(x, dim=1) > 0
    if valid is not None:
        ok &= torch.as_tensor(valid, dtype=torch.bool)
    rows_ok = torch.nonzero(ok).flatten()
    m = rows_ok.numel()
    k_eff = min(k, m - 1)
    if k_eff <= 0:
        return index, sims

    dev = resolve_device(device)
    fast = dev.type == "cuda" if fast is None else fast
    n_cand = min(m - 1, k_eff + RERANK_EXTRA) if fast else k_eff
    if dev.type == "cuda":
        memory_mb = max(memory_mb, CUDA_MIN_BLOCK_MB)
    # Every row valid (the usual case): no gathered copy of a matrix that may be gigabytes.
    xv = torch.nn.functional.normalize(x if m == n else x[rows_ok], dim=1).to(dev)
    if approximate if approximate is not None else m > EXACT_MAX_ROWS:
        out_i, out_s = _reduced_ivf_search(xv, k_eff, memory_mb)
        return _scatter_back(index, sims, rows_ok, k_eff, out_i.cpu(), out_s.cpu())
    rb, cb = block if block is not None else block_sizes(m, memory_mb)
    out_i, out_s = _exact_search(xv, k_eff, n_cand, (rb, cb), fast)
    return _scatter_back(index, sims, rows_ok, k_eff, out_i, out_s)


def _exact_search(
    xv: torch.Tensor, k_eff: int, n_cand: int, block: tuple[int, int], fast: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k-NN of the unit rows `xv` by blocks of (rows, cols) = `block`: local indices
    and similarities (m, k_eff) on the CPU. `fast`: TF32 candidates, exact fp32 rerank."""
    m = xv.shape[0]
    rb, cb = block
    out_i = torch.empty((m, k_eff), dtype=torch.int64)
    out_s = torch.empty((m, k_eff), dtype=torch.float32)
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for r0 in range(0, m, rb):
            r1 = min(m, r0 + rb)
            q = xv[r0:r1]
            torch.backends.cuda.matmul.allow_tf32 = fast
            best_s, best_i = _row_block_candidates(xv, r0, r1, cb, n_cand)
            torch.backends.cuda.matmul.allow_tf32 = False
            if fast:  # exact fp32 rerank of the candidates
                exact = torch.einsum("bd,bcd->bc", q, xv[best_i.clamp(min=0)])
                exact = torch.where(
                    torch.isfinite(best_s), exact, torch.full_like(exact, float("-inf"))
                )
                best_s, pos = exact.topk(k_eff, dim=1)
                best_i = best_i.gather(1, pos)
            out_i[r0:r1] = best_i.cpu()
            out_s[r0:r1] = best_s.cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return out_i, out_s


def _row_block_candidates(
    xv: torch.Tensor, r0: int, r1: int, cb: int, n_cand: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `n_cand` best columns of rows r0:r1, merged over column blocks of `cb`."""
    m, dev = xv.shape[0], xv.device
    q = xv[r0:r1]
    best_s = torch.full((r1 - r0, n_cand), float("-inf"), device=dev)
    best_i = torch.full((r1 - r0, n_cand), -1, dtype=torch.int64, device=dev)
    for c0 in range(0, m, cb):
        c1 = min(m, c0 + cb)
        sim = q @ xv[c0:c1].T
        lo, hi = max(r0, c0), min(r1, c1)
        if lo < hi:  # this block holds part of the diagonal: no row is its own neighbour
            d = torch.arange(lo, hi, device=dev)
            sim[d - r0, d - c0] = float("-inf")
        top_s, top_i = sim.topk(min(n_cand, c1 - c0), dim=1)
        cand_s = torch.cat([best_s, top_s], dim=1)
        cand_i = torch.cat([best_i, top_i + c0], dim=1)
        best_s, pos = cand_s.topk(n_cand, dim=1)
        best_i = cand_i.gather(1, pos)
    return best_s, best_i


def _scatter_back(index, sims, rows_ok, k_eff, out_i, out_s) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour lists over the valid rows (local indices) into the (N, k) outputs."""
    rows_np = rows_ok.numpy()
    found = np.isfinite(out_s.numpy()) & (out_i.numpy() >= 0)
    mapped = np.where(found, rows_np[out_i.clamp(min=0).numpy()], -1)
    index[rows_np, :k_eff] = mapped
    sims[rows_np, :k_eff] = np.where(found, out_s.numpy(), 0.0)
    return index, sims


def _kmeans(xv: torch.Tensor, n_lists: int, iterations: int = 6) -> torch.Tensor:
    """Spherical k-means centroids (unit rows) from a fixed-seed sample of `xv`."""
    gen = torch.Generator().manual_seed(0)
    m = xv.shape[0]
    sample = xv[torch.randperm(m, generator=gen)[: min(m, 32 * n_lists)].to(xv.device)]
    centroids = sample[:n_lists].clone()
    for _ in range(iterations):
        assign = (sample @ centroids.T).argmax(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, sample)
        filled = torch.linalg.vector_norm(sums, dim=1) > 0  # an empty list keeps its centroid
        centroids[filled] = torch.nn.functional.normalize(sums[filled], dim=1)
    return centroids


IVF_DIMS = 64  # the inverted file searches the top principal components of wider vectors
IVF_SAMPLE = 50_000  # rows the principal axes are fitted on (a fixed-seed sample)
REDUCED_PROBE = 6  # lists probed in the reduced space


def _reduced_ivf_search(
    xv: torch.Tensor, k: int, memory_mb: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`_ivf_search` on the top `IVF_DIMS` principal components of the unit rows `xv` for
    `k + REDUCED_EXTRA` candidates, reranked by their exact cosines in every dimension.

    Embeddings of 384-768 dimensions keep most of their variance in a few dozen
    components, so the candidates hold the true neighbours; the search costs d/64 times
    less and the similarities returned are the exact ones."""
    m, d = xv.shape
    if d <= IVF_DIMS:
        return _ivf_search(xv, k, memory_mb)
    gen = torch.Generator().manual_seed(0)
    sample = xv[torch.randperm(m, generator=gen)[: min(m, IVF_SAMPLE)].to(xv.device)]
    sample = sample - sample.mean(0)
    _, vectors = torch.linalg.eigh((sample.T @ sample).double())  # ascending eigenvalues
    axes = vectors[:, -IVF_DIMS:].float()
    reduced = xv @ axes
    n_cand = min(m - 1, k + REDUCED_EXTRA)
    cand_i, _ = _ivf_search(reduced, n_cand, memory_mb, probe=REDUCED_PROBE)
    out_i = torch.full((m, k), -1, dtype=torch.int64, device=xv.device)
    out_s = torch.full((m, k), float("-inf"), device=xv.device)
    step = max(1, (memory_mb * 2**20 // 4) // max(n_cand * d, 1))
    for a in range(0, m, step):
        ci = cand_i[a : a + step]
        found = ci >= 0
        exact = torch.bmm(xv[ci.clamp(min=0)], xv[a : a + step, :, None])[:, :, 0]
        exact = torch.where(found, exact, torch.full_like(exact, float("-inf")))
        top_s, pos = exact.topk(k, dim=1)
        out_s[a : a + step] = top_s
        out_i[a : a + step] = torch.where(torch.isfinite(top_s), ci.gather(1, pos), -1)
    return out_i, out_s


def _ivf_search(
    xv: torch.Tensor, k: int, memory_mb: int, probe: int = IVF_PROBE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate k-NN (an inverted file): rows are split into ~2 sqrt(m) lists by
    k-means; the rows of a list search the rows of the `probe` lists whose centroids are
    nearest its own (its own first). Cost ~ m^1.5 d instead of m^2 d; a row's true
    neighbour is missed only when it sits in none of those lists.

    The rows are reordered list by list once, so a list is a slice (no gathers per list)."""
    m = xv.shape[0]
    n_lists = max(1, min(m // 8, round(2 * m**0.5)))
    centroids = _kmeans(xv, n_lists)
    step = max(1, (memory_mb * 2**20 // 4) // max(n_lists, 1))
    assign = torch.cat([(xv[a : a + step] @ centroids.T).argmax(1) for a in range(0, m, step)])
    near = centroids @ centroids.T
    near.fill_diagonal_(float("inf"))  # a list searches itself first
    probes = near.topk(min(probe, n_lists), dim=1).indices.tolist()
    order = torch.argsort(assign, stable=True)
    xs = xv[order]
    bounds = [0, *torch.bincount(assign, minlength=n_lists).cumsum(0).tolist()]
    out_i = torch.full((m, k), -1, dtype=torch.int64, device=xv.device)
    out_s = torch.full((m, k), float("-inf"), device=xv.device)
    budget = memory_mb * 2**20 // 8
    for c in range(n_lists):
        lo, hi = bounds[c], bounds[c + 1]
        if hi == lo:
            continue
        spans = [(bounds[p], bounds[p + 1]) for p in probes[c]]
        cand_x = torch.cat([xs[a:b] for a, b in spans])
        cand = torch.cat([torch.arange(a, b, device=xv.device) for a, b in spans])
        kk = min(k, len(cand) - 1)
        if kk <= 0:
            continue
        chunk = max(1, budget // max(len(cand), 1))
        for a in range(lo, hi, chunk):
            b = min(hi, a + chunk)
            sim = xs[a:b] @ cand_x.T
            own = torch.arange(b - a, device=xv.device)
            sim[own, own + (a - lo)] = float("-inf")  # no row is its own neighbour
            top_s, top_i = sim.topk(kk, dim=1)
            out_s[a:b, :kk] = top_s
            out_i[a:b, :kk] = cand[top_i]
    # Back from list order to row order (indices too).
    result_i = torch.empty_like(out_i)
    result_s = torch.empty_like(out_s)
    result_i[order] = torch.where(out_i >= 0, order[out_i.clamp(min=0)], -1)
    result_s[order] = out_s
    return result_i, result_s


def knn_edges(index: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k-NN lists as edges `neighbour -> node` (messages flow from the neighbours) + weights."""
    rows = np.repeat(np.arange(index.shape[0]), index.shape[1])
    cols = index.reshape(-1)
    keep = cols >= 0
    edge_index = np.stack([cols[keep], rows[keep]]).astype(np.int64)
    return edge_index, sims.reshape(-1)[keep].astype(np.float32)
