"""Synthetic negatives: corrupted copies of real QAs, labelled inconsistent.

Two corruptions, as in MicroVQA++:

* wrong figure - the copy hangs off another figure's image and caption, so its edge signals
  are those of the wrong pair: similarities (text caption-QA, CLIP image-QA, CLIP
  image-caption) are recomputed from the embeddings of the new pairing where both exist;
  other figure-caption signals (`PAIR_SIGNALS`, e.g. the pixel-neighbour caption agreement)
  are those of the new (real) figure-caption pair;
  the NLI triple is taken from a real QA whose entailment is in the lowest quarter (an
  unrelated caption neither entails nor contradicts); agent signals are drawn from their
  low quarter; a signal none of this applies to is left unavailable;
* contradicted answer - the copy keeps its figure and caption, and its caption-QA edge gets
  contradiction features (high `nli_contradict`, low entailment, agents disagreeing).

* duplicate - the very same QA, signals and all, also attached to another figure: a
  question so unspecific that it fits any figure (a generic "what kind of image is this?"),
  or a QA on a near-duplicate figure. Its own signals look fine; only the graph shows it: it
  hears its source (similarity 1, on another figure) first, then its source's neighbours.

Copies are training material only: they are never written to the store, and in the graph
they only receive messages, so they do not change any real node's score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from microvqa_tui.pipeline.graph.inputs import (
    AGENT_SIGNALS,
    NLI_SIGNALS,
    PAIR_SIGNALS,
    SIMILARITY_SIGNALS,
    GraphInputs,
    SignalTable,
)

WRONG_FIGURE, CONTRADICTED, DUPLICATE = 0, 1, 2
KIND_NAMES = {WRONG_FIGURE: "wrong_figure", CONTRADICTED: "contradicted", DUPLICATE: "duplicate"}


@dataclass
class SyntheticNegatives:
    source: np.ndarray  # (M,) index of the real QA copied
    kind: np.ndarray  # (M,) int8: WRONG_FIGURE | CONTRADICTED
    figure: np.ndarray  # (M,) figure (image node) the copy is attached to
    caption: np.ndarray  # (M,) caption the copy is attached to, -1 = none
    signals: SignalTable  # (M, S) the copy's signals, same names as the real QAs'

    def __len__(self) -> int:
        return len(self.source)

    @classmethod
    def none(cls, signal_names: list[str]) -> SyntheticNegatives:
        empty = np.zeros(0, np.int64)
        s = len(signal_names)
        return cls(
            empty,
            empty.astype(np.int8),
            empty,
            empty,
            SignalTable(list(signal_names), np.zeros((0, s)), np.zeros((0, s), bool)),
        )

    def counts(self) -> dict[str, int]:
        return {f"synthetic_{name}": int((self.kind == k).sum()) for k, name in KIND_NAMES.items()}


def _low_tail(
    values: np.ndarray, rng: np.random.Generator, size: int, upper: bool = False
) -> np.ndarray:
    """Draws from the lowest (or highest) quarter of the observed values."""
    ordered = np.sort(values)
    quarter = max(1, len(ordered) // 4)
    pool = ordered[-quarter:] if upper else ordered[:quarter]
    return rng.choice(pool, size=size)


def _cosine(
    inputs: GraphInputs, a: tuple[str, str], b: tuple[str, str], ia: np.ndarray, ib: np.ndarray
):
    """Cosine of rows `ia` of embedding `a` with rows `ib` of `b`; (values, available)."""
    ea, eb = inputs.embedding(*a), inputs.embedding(*b)
    n = len(ia)
    if ea is None or eb is None or ea.dim != eb.dim:
        return np.zeros(n, np.float32), np.zeros(n, bool)
    ok = (ia >= 0) & (ib >= 0)
    ia_, ib_ = np.where(ok, ia, 0), np.where(ok, ib, 0)
    ok &= ea.mask[ia_] & eb.mask[ib_]
    va = ea.vectors[ia_]
    vb = eb.vectors[ib_]
    denom = np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1)
    cos = np.divide((va * vb).sum(1), denom, out=np.zeros(n, np.float32), where=denom > 0)
    return cos.astype(np.float32), ok


def corrupt(
    inputs: GraphInputs,
    fraction: float,
    *,
    seed: int = 0,
    wrong_figure_share: float = 0.5,
    duplicate_share: float = 0.0,
    wrong_pair_share: float = 0.0,
) -> SyntheticNegatives:
    """`round(fraction * n_qa)` corrupted copies (see the module doc): `duplicate_share`
    of them duplicates, of the rest `wrong_figure_share` on the wrong figure.

    `wrong_pair_share` of the wrong-figure copies keep their own caption (the caption and its
    QA were attached to another figure: the caption still entails the QA, only the image
    signals and the figure-caption pair show it).

    Wrong-figure copies need at least two figures; contradicted ones need an NLI or agent
    signal to carry the contradiction. When only one kind is possible, all copies are of it;
    when neither is, there are none.
    """
    rng = np.random.default_rng(seed)
    sig = inputs.signals
    names = list(sig.names)
    n_total = int(np.floor(fraction * inputs.n_qa + 0.5))
    can_wrong = inputs.n_figures >= 2
    can_contra = any(name in names for name in (*NLI_SIGNALS, *AGENT_SIGNALS))
    if n_total == 0 or inputs.n_qa == 0 or not (can_wrong or can_contra):
        return SyntheticNegatives.none(names)
    n_dup = int(np.floor(n_total * duplicate_share + 0.5)) if can_wrong else 0
    n_rest = n_total - n_dup
    if can_wrong and can_contra:
        n_wrong = int(np.floor(n_rest * wrong_figure_share + 0.5))
    else:
        n_wrong = n_rest if can_wrong else 0
    kind = np.array(
        [WRONG_FIGURE] * n_wrong + [CONTRADICTED] * (n_rest - n_wrong) + [DUPLICATE] * n_dup,
        np.int8,
    )
    source = rng.choice(inputs.n_qa, size=n_total, replace=n_total > inputs.n_qa)
    figure = inputs.qa_figure[source].copy()
    caption = inputs.qa_caption[source].copy()
    values = sig.values[source].copy()
    mask = sig.mask[source].copy()

    wrong = np.flatnonzero(kind == WRONG_FIGURE)
    if len(wrong):
        _attach_elsewhere(inputs, rng, source[wrong], figure, caption, wrong)
        paired = _share(rng, wrong, wrong_pair_share)
        caption[paired] = inputs.qa_caption[source[paired]]
        moved = np.setdiff1d(wrong, paired)
        for rows, keep_caption in ((moved, False), (paired, True)):
            if len(rows):
                _wrong_pair_signals(
                    inputs, rng, source[rows], figure[rows], caption[rows], values, mask, rows,
                    keep_caption=keep_caption,
                )  # fmt: skip
    contra = np.flatnonzero(kind == CONTRADICTED)
    if len(contra):
        _contradict(sig, rng, values, mask, contra)
    dup = np.flatnonzero(kind == DUPLICATE)
    if len(dup):  # the same QA, signals and all, on another figure
        _attach_elsewhere(inputs, rng, source[dup], figure, caption, dup)
    return SyntheticNegatives(source, kind, figure, caption, SignalTable(names, values, mask))


def _attach_elsewhere(inputs, rng, src, figure, caption, rows) -> None:
    """Move copies `rows` to a random other figure (one with a caption when the QA had one)."""
    order = np.argsort(inputs.caption_figure, kind="stable")  # captions grouped by figure
    fig_sorted = inputs.caption_figure[order]
    captioned, first, count = np.unique(fig_sorted, return_index=True, return_counts=True)
    own = inputs.qa_figure[src]
    m = len(rows)
    # Any other figure.
    r = rng.integers(inputs.n_figures - 1, size=m)
    choice = r + (r >= own)
    # Another captioned figure, for QAs that had a caption.
    use = (inputs.qa_caption[src] >= 0) & (len(captioned) >= 2)
    if use.any():
        pos = np.searchsorted(captioned, own)
        own_captioned = (pos < len(captioned)) & (
            captioned[np.minimum(pos, len(captioned) - 1)] == own
        )
        span = len(captioned) - own_captioned.astype(np.int64)
        r = (rng.random(m) * span).astype(np.int64)
        r = r + (own_captioned & (r >= pos))
        choice = np.where(use, captioned[np.minimum(r, len(captioned) - 1)], choice)
    figure[rows] = choice
    # A random caption of the chosen figure, -1 when it has none.
    if len(captioned) == 0:
        caption[rows] = -1
        return
    pos = np.minimum(np.searchsorted(captioned, choice), len(captioned) - 1)
    has = captioned[pos] == choice
    pick = first[pos] + (rng.random(m) * count[pos]).astype(np.int64)
    caption[rows] = np.where(has, order[pick], -1)


def _share(rng: np.random.Generator, rows: np.ndarray, share: float) -> np.ndarray:
    """A random `share` of `rows` (nothing drawn when the share is 0)."""
    m = int(np.floor(share * len(rows) + 0.5))
    return np.sort(rng.choice(rows, size=m, replace=False)) if m else rows[:0]


def _wrong_pair_signals(
    inputs, rng, src, fig, cap, values, mask, rows, *, keep_caption: bool = False
) -> None:
    """Signals of copies `rows` on figure `fig` and caption `cap`; `keep_caption`: the
    QA's own caption, so its NLI triple stands and the pair is not a real one."""
    sig = inputs.signals
    endpoint = {"image": fig, "caption": cap, "qa": src}
    done: set[str] = set()
    for name, (a, b) in SIMILARITY_SIGNALS.items():
        j = sig.index(name)
        if j is None:
            continue
        val, ok = _cosine(inputs, a, b, endpoint[a[0]], endpoint[b[0]])
        pair = inputs.caption_signals.column(name) if (a[0], b[0]) == ("image", "caption") else None
        if pair is not None:  # a pair-level signal of the new caption, where not recomputable
            use = ~ok & (cap >= 0)
            c = np.where(cap >= 0, cap, 0)
            val = np.where(use, pair[0][c], val)
            ok = ok | (use & pair[1][c])
        values[rows, j] = np.where(ok, val, 0.0)
        mask[rows, j] = ok
        done.add(name)

    # Other pair-level signals: the new figure and caption are a real pair with its value.
    c = np.where(cap >= 0, cap, 0)
    for name in PAIR_SIGNALS:
        j, pair = sig.index(name), inputs.caption_signals.column(name)
        if j is None or name in done:
            continue
        ok = (cap >= 0) & (pair[1][c] if pair is not None else False) & (not keep_caption)
        values[rows, j] = np.where(ok, pair[0][c] if pair is not None else 0.0, 0.0)
        mask[rows, j] = ok
        done.add(name)

    # NLI: the triple of a real QA with low entailment (what an unrelated caption gives).
    nli_cols = [(n, sig.index(n)) for n in NLI_SIGNALS if sig.index(n) is not None]
    if keep_caption:  # its own caption still entails it
        done.update(n for n, _ in nli_cols)
    elif nli_cols:
        ent = sig.column("nli_entail")
        if ent is not None and ent[1].any():
            avail = np.flatnonzero(ent[1])
            order = avail[np.argsort(ent[0][avail], kind="stable")]
            pool = order[: max(1, len(order) // 4)]
        else:
            pool = np.flatnonzero(sig.mask[:, [j for _, j in nli_cols]].any(1))
        donors = rng.choice(pool, size=len(rows)) if len(pool) else None
        for name, j in nli_cols:
            if donors is None:
                mask[rows, j] = False
            else:
                values[rows, j] = sig.values[donors, j]
                mask[rows, j] = sig.mask[donors, j]
            done.add(name)
    _disagreeing_agents(sig, rng, values, mask, rows, done)

    for j, name in enumerate(sig.names):
        if name not in done:  # unknown how this signal reads on another figure: unavailable
            values[rows, j] = 0.0
            mask[rows, j] = False


def _disagreeing_agents(sig, rng, values, mask, rows, done: set[str]) -> None:
    for name in AGENT_SIGNALS:
        col = sig.column(name)
        if col is None:
            continue
        j = sig.index(name)
        observed = col[0][col[1]]
        if observed.size:
            values[rows, j] = _low_tail(observed, rng, len(rows))
            mask[rows, j] = True
        else:
            mask[rows, j] = False
        done.add(name)


def _contradict(sig: SignalTable, rng, values, mask, rows) -> None:
    n = len(rows)
    contra = sig.column("nli_contradict")
    if contra is not None:
        observed = contra[0][contra[1]]
        high = observed[observed >= 0.5]
        c = _low_tail(high, rng, n, upper=True) if high.size >= 4 else rng.uniform(0.6, 0.98, n)
        e = rng.uniform(0.0, 0.1, n) * (1 - c)
        for name, v in (("nli_contradict", c), ("nli_entail", e), ("nli_neutral", 1 - c - e)):
            j = sig.index(name)
            if j is not None:
                values[rows, j] = np.clip(v, 0.0, 1.0)
                mask[rows, j] = True
    else:
        j = sig.index("nli_entail")
        if j is not None:
            values[rows, j] = rng.uniform(0.0, 0.1, n)
            mask[rows, j] = True
    _disagreeing_agents(sig, rng, values, mask, rows, set())
