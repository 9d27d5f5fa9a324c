"""`image_neighbour_caption_agreement`: do figures that look alike have captions that read
alike?

For the caption c of figure f: the k nearest other figures to f in the model-free
`pixel_image` space (colour, stain and texture statistics, see `models.pixel`), and

    agreement(c) = mean over those figures g of  mean MiniLM cosine(c, captions of g)
                 - mean MiniLM cosine(c, every caption of another figure than f)

so it is centred per caption: ~0 when the look-alike figures' captions are no closer to c
than captions in general, > 0 when they are closer (an H&E image with an H&E caption, whose
look-alikes are H&E figures), < 0 when they are further (an H&E caption on a fluorescence
image, whose look-alikes are fluorescence figures). It is a weak, corpus-relative signal:
it says nothing when images of one look carry captions of every kind, and it depends on
which other figures are in the store when it is computed (it is not recomputed when
figures are added later).

Only figures with an image descriptor and at least one embedded caption are neighbours.
Everything is linear in the number of captions apart from the k-NN search over figures
(`graph.knn.knn`, blockwise, on the GPU when there is one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Agreement:
    """Per caption (rows of the input): the signal and its parts; NaN where unavailable."""

    value: np.ndarray  # (C,) neighbour mean - baseline
    neighbour_mean: np.ndarray  # (C,)
    baseline: np.ndarray  # (C,)
    neighbours: np.ndarray  # (C, k) figure indices, -1 = none
    why: list[str]  # "" where available, else why not


def neighbour_caption_agreement(
    caption_vectors: np.ndarray,
    caption_ok: np.ndarray,
    caption_figure: np.ndarray,
    figure_vectors: np.ndarray,
    figure_ok: np.ndarray,
    k: int = 5,
    *,
    device: str = "cpu",
) -> Agreement:
    """The agreement of every caption (see the module doc).

    `caption_vectors` (C, D) unit MiniLM vectors, `caption_ok` which rows have one,
    `caption_figure` (C,) the index of each caption's figure; `figure_vectors` (F, E) unit
    pixel descriptors, `figure_ok` which figures have one.
    """
    from microvqa_tui.pipeline.graph.knn import knn

    c = np.asarray(caption_vectors, np.float64)
    n_cap = c.shape[0]
    n_fig = figure_vectors.shape[0]
    caption_ok = np.asarray(caption_ok, bool)
    figure_ok = np.asarray(figure_ok, bool)
    cap_fig = np.asarray(caption_figure, np.int64)
    c = np.where(caption_ok[:, None], c, 0.0)

    # Per figure: the sum and number of its embedded captions.
    fig_sum = np.zeros((n_fig, c.shape[1]))
    np.add.at(fig_sum, cap_fig, c)
    fig_count = np.bincount(cap_fig[caption_ok], minlength=n_fig).astype(np.float64)
    fig_mean = np.divide(
        fig_sum, fig_count[:, None], out=np.zeros_like(fig_sum), where=fig_count[:, None] > 0
    )

    pool = figure_ok & (fig_count > 0)
    index, _ = knn(np.asarray(figure_vectors, np.float32), k, valid=pool, device=device)

    # Neighbour term: mean over the neighbour figures of the mean cosine with their captions.
    nbrs = index[cap_fig]  # (C, k)
    has = nbrs >= 0
    cos = np.einsum("cd,ckd->ck", c, fig_mean[np.maximum(nbrs, 0)])
    n_nbrs = has.sum(1)
    neighbour_mean = np.where(has, cos, 0.0).sum(1) / np.maximum(n_nbrs, 1)

    # Baseline: mean cosine with every embedded caption of another figure.
    total = c.sum(0)
    others = caption_ok.sum() - fig_count[cap_fig]
    baseline = (c @ total - np.einsum("cd,cd->c", c, fig_sum[cap_fig])) / np.maximum(others, 1)

    value = neighbour_mean - baseline
    why = [""] * n_cap
    for i in range(n_cap):
        if not caption_ok[i]:
            why[i] = "the caption could not be embedded"
        elif not figure_ok[cap_fig[i]]:
            why[i] = "the figure's image cannot be decoded"
        elif n_nbrs[i] == 0 or others[i] <= 0:
            why[i] = "no other captioned figure to compare with"
    bad = np.array([bool(w) for w in why], bool)
    nan = np.float64("nan")
    return Agreement(
        value=np.where(bad, nan, value),
        neighbour_mean=np.where(bad, nan, neighbour_mean),
        baseline=np.where(bad, nan, baseline),
        neighbours=np.where(bad[:, None], -1, nbrs),
        why=why,
    )
