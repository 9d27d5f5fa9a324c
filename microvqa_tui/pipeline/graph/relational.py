"""Relational corruptions for the planted data set: errors a per-QA classifier cannot see
(or barely), but a graph of figures, captions and similar QAs can.

* caption_wrong - a caption written for another figure: all of its QAs are wrong together.
  Its QAs agree with their caption (text similarity, NLI as for clean QAs); only the weak
  CLIP similarities and the agents, who look at the image, disagree, QA by QA, noisily.
* near_duplicate - a QA attached to a near-duplicate of its figure (a panel variant): the
  CLIP similarity stays high, the caption says almost the same; its nearest QAs hang off the
  figure it came from.
* sibling_contradiction - a QA restating another QA of the same caption with the opposite
  answer: similarities as high as its sibling's, NLI misses most of these.
* generic - clusters of near-identical generic questions ("what kind of image is this?")
  spread over many figures: their signals look like clean QAs' (the answers are trivially
  right), their embeddings all sit on a few templates.

`plant(state, rng, shares)` mutates the arrays of `synthetic.planted` in place; `state`
holds its embeddings, links and raw signal columns by name.
"""

from __future__ import annotations

import numpy as np

CAPTION_WRONG, NEAR_DUPLICATE, SIBLING_CONTRADICTION, GENERIC = 2, 3, 4, 5
RELATIONAL_KINDS = {
    "caption_wrong": CAPTION_WRONG,
    "near_duplicate": NEAR_DUPLICATE,
    "sibling_contradiction": SIBLING_CONTRADICTION,
    "generic": GENERIC,
}
CLEAN = -1
N_TEMPLATES = 3


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = np.einsum("ij,ij->i", a, b)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (num / np.maximum(den, 1e-12)).astype(np.float32)


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def near_duplicate_pairs(z_fig: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Make `share` of the figures near-duplicates of another (latent + small noise), before
    anything is drawn from the latents. Returns (pairs, 2): [original, near-duplicate]."""
    n = len(z_fig)
    m = min(n // 2, int(np.floor(share * n + 0.5)))
    if m == 0:
        return np.zeros((0, 2), np.int64)
    picked = rng.permutation(n)[: 2 * m].reshape(m, 2)
    z_fig[picked[:, 1]] = z_fig[picked[:, 0]] + 0.15 * _normal(rng, m, z_fig.shape[1])
    return picked


def _nli(rng, e_mean: np.ndarray, n_mean: float, c_mean, e_sd: float = 1.2) -> np.ndarray:
    """An NLI (entail, neutral, contradict) triple per row: a softmax of noisy logits."""
    m = len(e_mean)
    e = e_mean + e_sd * _normal(rng, m)
    stack = np.stack([e, n_mean + _normal(rng, m), c_mean + _normal(rng, m)], axis=1).astype(
        np.float64
    )
    stack -= stack.max(1, keepdims=True)
    p = np.exp(stack)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def _clean_nli(rng, q: np.ndarray) -> np.ndarray:
    return _nli(rng, 2.0 + 2.5 * (q - 0.75), 0.3, -1.5)


def _agents(s: dict, rng, rows: np.ndarray, p_agree: float, p_support: float) -> None:
    s["agree"][rows] = rng.random(len(rows)) < p_agree
    s["support"][rows] = rng.random(len(rows)) < p_support


def _similarities(s: dict, rng, rows: np.ndarray) -> None:
    """Recompute the QAs' similarity signals from their (current) embeddings and links."""
    fig, cap = s["qa_figure"][rows], s["qa_caption"][rows]
    m = len(rows)
    s["text_sim"][rows] = _cos(s["caption_text"][cap], s["qa_text"][rows]) + 0.03 * _normal(rng, m)
    s["clip_qa"][rows] = _cos(s["image_clip"][fig], s["qa_clip"][rows]) + 0.05 * _normal(rng, m)
    s["clip_cap"][rows] = s["clip_cap_pair"][cap] + 0.02 * _normal(rng, m)


def _clean_rows(s: dict) -> np.ndarray:
    return np.flatnonzero(s["kind"] == CLEAN)


def _same_topic_other(topic: np.ndarray, figures: np.ndarray, rng) -> np.ndarray:
    """For each figure, another figure of its topic (any other one where it is alone)."""
    out = np.empty(len(figures), np.int64)
    for i, f in enumerate(figures.tolist()):
        pool = np.flatnonzero((topic == topic[f]) & (np.arange(len(topic)) != f))
        if not len(pool):
            pool = np.flatnonzero(np.arange(len(topic)) != f)
        out[i] = rng.choice(pool)
    return out


def caption_wrong(s: dict, rng, m: int) -> None:
    """Whole captions (of clean QAs only) written for another figure of the same topic."""
    kind, qa_caption = s["kind"], s["qa_caption"]
    n_caps = len(s["caption_figure"])
    dirty = np.bincount(qa_caption[kind != CLEAN], minlength=n_caps) > 0
    sizes = np.bincount(qa_caption, minlength=n_caps)
    candidates = rng.permutation(np.flatnonzero(~dirty & (sizes > 0)))
    caps = candidates[: max(1, np.searchsorted(np.cumsum(sizes[candidates]), m) + 1)]
    own = s["caption_figure"][caps]
    other = _same_topic_other(s["topic"], own, rng)
    z = s["z_fig"][other] + 0.3 * _normal(rng, len(caps), s["z_fig"].shape[1])
    s["caption_text"][caps] = z @ s["p_text"] + 0.5 * _normal(rng, len(caps), s["p_text"].shape[1])
    s["caption_clip"][caps] = z @ s["p_clip"] + 0.8 * _normal(rng, len(caps), s["p_clip"].shape[1])
    s["clip_cap_pair"][caps] = _cos(s["image_clip"][own], s["caption_clip"][caps])
    rows = np.flatnonzero(np.isin(qa_caption, caps))
    pos = {c: i for i, c in enumerate(caps.tolist())}
    z_qa = z[[pos[c] for c in qa_caption[rows].tolist()]] + 0.7 * _normal(
        rng, len(rows), z.shape[1]
    )
    s["qa_text"][rows] = z_qa @ s["p_text"] + 0.5 * _normal(rng, len(rows), s["p_text"].shape[1])
    s["qa_clip"][rows] = z_qa @ s["p_clip"] + _normal(rng, len(rows), s["p_clip"].shape[1])
    kind[rows] = CAPTION_WRONG
    _similarities(s, rng, rows)
    s["nli"][rows] = _clean_nli(rng, s["quality"][qa_caption[rows]])  # the caption entails it
    _agents(s, rng, rows, 0.45, 0.45)  # agents look at the image


def near_duplicate(s: dict, rng, m: int) -> None:
    """Move one clean QA of the original of each near-duplicate pair to the duplicate."""
    pairs = s["pairs"]
    kind = s["kind"]
    rows, targets = [], []
    for a, b in pairs[:m].tolist():
        mine = np.flatnonzero((s["qa_figure"] == a) & (kind == CLEAN))
        if (kind[s["qa_caption"] == b] == CAPTION_WRONG).any():
            continue  # a wrong caption stays wholly its own kind
        if len(mine):
            rows.append(int(rng.choice(mine)))
            targets.append(b)
    if not rows:
        return
    rows_a = np.array(rows)
    s["qa_figure"][rows_a] = targets
    s["qa_caption"][rows_a] = targets  # the first caption of a figure has the figure's index
    kind[rows_a] = NEAR_DUPLICATE
    _similarities(s, rng, rows_a)
    q = s["quality"][s["qa_caption"][rows_a]]
    s["nli"][rows_a] = _nli(rng, np.full(len(q), 0.9), 0.8, -1.0)  # a detail the caption lacks
    _agents(s, rng, rows_a, 0.6, 0.65)  # the image looks the same


def sibling_contradiction(s: dict, rng, m: int) -> None:
    kind, qa_caption = s["kind"], s["qa_caption"]
    clean = _clean_rows(s)
    rng.shuffle(clean)
    used: set[int] = set()
    pairs = []
    first_clean: dict[int, int] = {}
    for r in clean.tolist():
        c = int(qa_caption[r])
        if c in first_clean and first_clean[c] not in used and len(pairs) < m:
            pairs.append((first_clean[c], r))
            used |= {first_clean[c], r}
        elif c not in first_clean:
            first_clean[c] = r
    if not pairs:
        return
    src, dst = np.array(pairs).T
    d_text, d_clip = s["qa_text"].shape[1], s["qa_clip"].shape[1]
    s["qa_text"][dst] = s["qa_text"][src] + 0.1 * _normal(rng, len(dst), d_text)
    s["qa_clip"][dst] = s["qa_clip"][src] + 0.2 * _normal(rng, len(dst), d_clip)
    kind[dst] = SIBLING_CONTRADICTION
    s["siblings"] = np.stack([src, dst])  # [restated, restatement]; the first stay clean
    _similarities(s, rng, dst)
    detected = rng.random(len(dst)) < 0.3
    e_mean = np.where(detected, -0.5, 1.2)
    c_mean = np.where(detected, 2.0, -0.5)
    s["nli"][dst] = _nli(rng, e_mean, 0.2, c_mean)
    _agents(s, rng, dst, 0.5, 0.5)


def generic(s: dict, rng, m: int) -> None:
    clean = np.setdiff1d(_clean_rows(s), s["siblings"][0] if "siblings" in s else [])
    rows = np.sort(rng.choice(clean, size=min(m, len(clean)), replace=False))
    latent = s["z_fig"].shape[1]
    z_t = 2.0 * _normal(rng, N_TEMPLATES, latent)
    t = rng.integers(N_TEMPLATES, size=len(rows))
    d_text, d_clip = s["qa_text"].shape[1], s["qa_clip"].shape[1]
    s["qa_text"][rows] = (z_t @ s["p_text"])[t] + 0.1 * _normal(rng, len(rows), d_text)
    s["qa_clip"][rows] = (z_t @ s["p_clip"])[t] + 0.3 * _normal(rng, len(rows), d_clip)
    clean_left = np.setdiff1d(clean, rows)
    # The signals of a trivially right answer look like a clean QA's.
    for name in ("text_sim", "clip_qa"):
        s[name][rows] = s[name][rng.choice(clean_left, size=len(rows))]
    s["kind"][rows] = GENERIC
    s["nli"][rows] = _clean_nli(rng, s["quality"][s["qa_caption"][rows]])
    _agents(s, rng, rows, 0.85, 0.85)


PLANTERS = {
    "caption_wrong": caption_wrong,
    "near_duplicate": near_duplicate,
    "sibling_contradiction": sibling_contradiction,
    "generic": generic,
}


def plant(s: dict, rng: np.random.Generator, shares: dict[str, float]) -> None:
    """Corrupt `shares[kind]` of the QAs (of the clean ones left) with each relational kind."""
    unknown = set(shares) - set(PLANTERS)
    if unknown:
        raise ValueError(f"unknown relational corruption(s): {', '.join(sorted(unknown))}")
    n = len(s["kind"])
    for name, planter in PLANTERS.items():
        m = int(np.floor(shares.get(name, 0.0) * n + 0.5))
        if m > 0:
            planter(s, rng, m)
