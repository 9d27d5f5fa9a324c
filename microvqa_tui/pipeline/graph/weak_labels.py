"""Weak supervision: labelling functions over the signals, and the training targets.

Each labelling function (LF) looks at one signal of one QA and votes +1 (consistent), -1
(inconsistent) or 0 (abstain; also when the signal is unavailable). The votes combine into
a noisy label:

* positive: no negative vote, at least `min_positive_votes` positive votes - or as many as
  the store has LFs able to vote positive, if fewer (the pair-level LFs, or one whose signal
  never reads high, cannot supply the second vote) - and every available key signal agrees:
  entailment high, a QA similarity (text or CLIP) high, the agents agree / support;
* negative: contradiction high, or two negative votes, or a negative vote and no positive
  (pair-level signals - CLIP image-caption cosine, the pixel-neighbour caption agreement -
  only vote negative, when very low);
* abstain otherwise.

Similarity thresholds are quantiles of the signal's own distribution (similarity scales differ
per model), unless absolute ones are given.

A label model (naive Bayes over the votes, fitted by EM from the rule labels) then gives
every QA - abstentions included - a posterior P(consistent | votes) that weighs each LF by
how reliable it turns out to be. Training uses these soft labels by default: a flexible model
trained only on the rule labels re-learns the rules' all-must-agree thresholds and ranks the
QAs they abstain on poorly (see benchmarks/graph_quality.py). Human labels override all of
this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from microvqa_tui.pipeline.graph.inputs import SignalTable

POSITIVE, NEGATIVE, ABSTAIN = 1, 0, -1

# Where a target came from.
SOURCE_NONE, SOURCE_WEAK, SOURCE_SYNTHETIC, SOURCE_HUMAN = 0, 1, 2, 3

# Conditionally independent LFs a naive-Bayes label model needs to be identifiable.
MIN_EM_LFS = 3

QA_SIMILARITIES = ("text_caption_qa", "clip_image_qa")
# Pair-level signals: they only vote negative (very low), never positive on their own.
# image_neighbour_caption_agreement is a centred agreement (pixel-descriptor neighbours +
# MiniLM), not a cosine, but reads the same way: quantile cuts of its own distribution.
PAIR_SIMILARITIES = ("clip_image_caption", "image_neighbour_caption_agreement")


@dataclass(frozen=True)
class LFConfig:
    entail_high: float = 0.7
    contradict_high: float = 0.7
    agreement_high: float = 0.75
    agreement_low: float = 0.25
    supported_threshold: float = 0.5
    sim_high_quantile: float = 0.6
    sim_low_quantile: float = 0.05
    min_positive_votes: int = 2
    # Fewer rule labels than this in a class: the run report warns the labels are too few.
    min_class_labels: int = 5
    # name -> (very low, high): absolute similarity thresholds instead of the quantiles.
    sim_thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class WeakLabels:
    label: np.ndarray  # (N,) int8: 1 positive, 0 negative, -1 abstain
    votes: dict[str, np.ndarray]  # LF name -> (N,) int8 in {-1, 0, +1}
    thresholds: dict[str, tuple[float, float]]  # similarity LF -> (very low, high) used
    posterior: np.ndarray | None = None  # (N,) P(consistent | votes), see `label_model`
    min_class_labels: int = LFConfig.min_class_labels

    @property
    def coverage(self) -> float:
        return float((self.label != ABSTAIN).mean()) if len(self.label) else 0.0

    def warnings(self) -> list[str]:
        """Why these labels are a poor teacher (no signal, one class only, too few)."""
        if not self.votes:
            return ["no signal available: the graph learns from its synthetic negatives only"]
        positive = int((self.label == POSITIVE).sum())
        negative = int((self.label == NEGATIVE).sum())
        one_way = [k for k, v in self.votes.items() if not ((v > 0).any() and (v < 0).any())]
        out = []
        if positive == 0 or negative == 0:
            missing = "consistent" if positive == 0 else "inconsistent"
            out.append(f"weak labels one-sided: no QA labelled {missing}")
        elif min(positive, negative) < self.min_class_labels:
            out.append(f"too few weak labels: {positive} consistent, {negative} inconsistent")
        if out and one_way:
            out.append("signals voting one way only: " + ", ".join(one_way))
        return out

    def summary(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "positive": int((self.label == POSITIVE).sum()),
            "negative": int((self.label == NEGATIVE).sum()),
            "abstain": int((self.label == ABSTAIN).sum()),
            "coverage": round(self.coverage, 4),
        }
        for name, v in self.votes.items():
            out[f"lf_{name}_fires"] = int((v != 0).sum())
        if warnings := self.warnings():
            out["warning"] = "; ".join(warnings)
        return out


def _similarity_thresholds(
    values: np.ndarray, mask: np.ndarray, name: str, config: LFConfig
) -> tuple[float, float] | None:
    if name in config.sim_thresholds:
        return config.sim_thresholds[name]
    available = values[mask]
    if available.size < 2:
        return None
    low = float(np.quantile(available, config.sim_low_quantile))
    high = float(np.quantile(available, config.sim_high_quantile))
    return low, high


def labelling_functions(
    signals: SignalTable, config: LFConfig | None = None
) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """The votes of every LF whose signal exists, and the similarity thresholds used.
    (An LF cannot vote where its signal is unavailable: see `SignalTable.column`.)"""
    config = config or LFConfig()
    n = len(signals)
    votes: dict[str, np.ndarray] = {}
    thresholds: dict[str, tuple[float, float]] = {}

    def vote(name: str, positive: np.ndarray | None, negative: np.ndarray | None) -> None:
        _, mask = signals.column(name)  # type: ignore[misc]
        v = np.zeros(n, np.int8)
        if positive is not None:
            v[positive & mask] = 1
        if negative is not None:
            v[negative & mask] = -1
        votes[name] = v

    if (col := signals.column("nli_entail")) is not None:
        vote("nli_entail", col[0] >= config.entail_high, None)
    if (col := signals.column("nli_contradict")) is not None:
        vote("nli_contradict", None, col[0] >= config.contradict_high)
    for name in QA_SIMILARITIES + PAIR_SIMILARITIES:
        if (col := signals.column(name)) is None:
            continue
        cut = _similarity_thresholds(col[0], col[1], name, config)
        if cut is None:
            continue
        thresholds[name] = cut
        positive = col[0] >= cut[1] if name in QA_SIMILARITIES else None
        vote(name, positive, col[0] <= cut[0])
    if (col := signals.column("agent_agreement")) is not None:
        vote("agent_agreement", col[0] >= config.agreement_high, col[0] <= config.agreement_low)
    if (col := signals.column("agent_supported")) is not None:
        vote(
            "agent_supported",
            col[0] >= config.supported_threshold,
            col[0] < config.supported_threshold,
        )
    return votes, thresholds


def weak_labels(signals: SignalTable, config: LFConfig | None = None) -> WeakLabels:
    """Combine the LF votes into one noisy label per QA (see the module doc)."""
    config = config or LFConfig()
    n = len(signals)
    votes, thresholds = labelling_functions(signals, config)
    if not votes:
        return WeakLabels(
            np.full(n, ABSTAIN, np.int8), votes, thresholds, None, config.min_class_labels
        )
    stack = np.stack(list(votes.values()), axis=1)
    pos = (stack > 0).sum(1)
    neg = (stack < 0).sum(1)

    def available(name: str) -> np.ndarray:
        col = signals.column(name)
        return np.zeros(n, bool) if col is None or name not in votes else col[1]

    # Every available key signal must agree for a confident positive.
    agree = np.ones(n, bool)
    if "nli_entail" in votes:
        agree &= ~available("nli_entail") | (votes["nli_entail"] > 0)
    sims = [s for s in QA_SIMILARITIES if s in votes]
    if sims:
        any_sim = np.zeros(n, bool)
        sim_high = np.zeros(n, bool)
        for s in sims:
            any_sim |= available(s)
            sim_high |= votes[s] > 0
        agree &= ~any_sim | sim_high
    for s in ("agent_agreement", "agent_supported"):
        if s in votes:
            agree &= ~available(s) | (votes[s] > 0)

    label = np.full(n, ABSTAIN, np.int8)
    positive = (neg == 0) & (pos >= positive_votes_needed(votes, config)) & agree
    strong = votes["nli_contradict"] < 0 if "nli_contradict" in votes else np.zeros(n, bool)
    negative = strong | (neg >= 2) | ((neg >= 1) & (pos == 0))
    label[positive] = POSITIVE
    label[negative] = NEGATIVE
    masks = {name: signals.column(name)[1] for name in votes}  # type: ignore[index]
    posterior = label_model(votes, masks, label)
    return WeakLabels(label, votes, thresholds, posterior, config.min_class_labels)


def positive_votes_needed(votes: dict[str, np.ndarray], config: LFConfig) -> int:
    """`min_positive_votes`, capped at the number of LFs that vote positive somewhere in the
    store, at least 1.

    Without the cap, a store with one signal able to vote positive (say MiniLM text
    similarity next to the negative-only pixel agreement) gets no positive label at all and
    the model learns from a handful of negatives. The cap is per store, not per QA: a QA
    missing some signals in a store that has them still needs the full count, so labels do
    not get easier where signals are missing.
    """
    able = sum(bool((v > 0).any()) for v in votes.values())
    return max(1, min(config.min_positive_votes, able))


def label_model(
    votes: dict[str, np.ndarray],
    available: dict[str, np.ndarray],
    init: np.ndarray,
    *,
    iterations: int = 50,
    smoothing: float = 1.0,
) -> np.ndarray:
    """P(consistent | votes) for every QA, abstaining ones included: a naive-Bayes label
    model (Dawid-Skene) fitted by EM, started from the rule labels `init`.

    Each LF's vote (+1, 0 = available but not confident, -1) has a class-conditional
    distribution; an unavailable signal says nothing. The model learns how much each LF is
    worth (noisy agents less than NLI, say) instead of the all-must-agree rule, and ranks the
    QAs the rules abstain on.

    Two guards keep it from drifting where the votes carry little information: a positive
    vote never counts against consistency and a negative one never for it (an LF's polarity
    is known, only its weight is learned); and with fewer than `MIN_EM_LFS` LFs the model is
    not identifiable (EM slides towards calling every QA consistent), so it is fitted once to
    the rule labels instead of iterated.
    """
    names = list(votes)
    if len(names) < MIN_EM_LFS:
        iterations = 1
    n = len(init)
    if not names or n == 0:
        return np.full(n, 0.5)
    cat = np.stack([votes[k] for k in names], axis=1).astype(np.int64) + 1  # 0, 1, 2
    avail = np.stack([available[k] for k in names], axis=1).astype(np.float64)
    onehot = np.eye(3)[cat] * avail[:, :, None]  # (N, L, 3)
    q = np.where(init == POSITIVE, 0.9, np.where(init == NEGATIVE, 0.1, 0.5))
    for _ in range(iterations):
        prior = float(np.clip(q.mean(), 0.05, 0.95))
        pos = np.einsum("n,nlk->lk", q, onehot) + smoothing
        neg = np.einsum("n,nlk->lk", 1 - q, onehot) + smoothing
        log_ratio = np.log(pos / pos.sum(1, keepdims=True)) - np.log(
            neg / neg.sum(1, keepdims=True)
        )
        log_ratio[:, 0] = np.minimum(log_ratio[:, 0], 0.0)  # a -1 vote
        log_ratio[:, 2] = np.maximum(log_ratio[:, 2], 0.0)  # a +1 vote
        logit = np.log(prior / (1 - prior)) + np.einsum("nlk,lk->n", onehot, log_ratio)
        new = 1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))
        done = np.abs(new - q).max() < 1e-4
        q = new
        if done:
            break
    return q


@dataclass
class TrainTargets:
    """Per QA node (real ones first, then synthetic copies): target, loss weight, split."""

    y: np.ndarray  # (N,) float32 in [0, 1]
    weight: np.ndarray  # (N,) float32, 0 = unlabelled
    source: np.ndarray  # (N,) int8, SOURCE_*
    train: np.ndarray  # (N,) bool
    val: np.ndarray  # (N,) bool

    def summary(self) -> dict[str, int]:
        labelled = self.weight > 0
        return {
            "labelled": int(labelled.sum()),
            "label_positive": int((labelled & (self.y >= 0.5)).sum()),
            "label_negative": int((labelled & (self.y < 0.5)).sum()),
            "label_weak": int((self.source == SOURCE_WEAK).sum()),
            "label_synthetic": int((self.source == SOURCE_SYNTHETIC).sum()),
            "label_human": int((self.source == SOURCE_HUMAN).sum()),
            "train": int(self.train.sum()),
            "val": int(self.val.sum()),
        }


def make_targets(
    weak: WeakLabels,
    n_copies: int,
    *,
    human: np.ndarray | None = None,
    soft: bool = True,
    val_fraction: float = 0.2,
    human_weight: float = 5.0,
    label_smoothing: float = 0.05,
    seed: int = 0,
) -> TrainTargets:
    """Targets for the real QAs, overridden by `human` labels (-1 none, 0, 1), followed by
    `n_copies` synthetic negatives.

    `soft` (default): every real QA is a target, its label-model posterior, weighted by its
    confidence |2p - 1|; otherwise only the QAs the rules label, with their hard (smoothed)
    label. Weak and synthetic targets are class-balanced (each class weighs half) and split
    into a training and a validation part (stratified); human labels weigh `human_weight`
    and sit in both parts, so early stopping also looks at them.
    """
    n_real = len(weak.label)
    n = n_real + n_copies
    y = np.zeros(n, np.float32)
    confidence = np.ones(n, np.float32)
    source = np.zeros(n, np.int8)
    if soft and weak.posterior is not None and weak.votes:
        y[:n_real] = weak.posterior
        confidence[:n_real] = np.abs(2 * weak.posterior - 1)
        source[:n_real] = SOURCE_WEAK
    else:
        real = weak.label != ABSTAIN
        y[:n_real][real] = weak.label[real]
        source[:n_real][real] = SOURCE_WEAK
        if label_smoothing:
            y[:n_real][real] = y[:n_real][real] * (1 - 2 * label_smoothing) + label_smoothing
    source[n_real:] = SOURCE_SYNTHETIC
    if human is not None:
        human = np.asarray(human, np.int8).reshape(n_real)
        has = human >= 0
        y[:n_real][has] = human[has]
        confidence[:n_real][has] = 1.0
        source[:n_real][has] = SOURCE_HUMAN

    positive = y >= 0.5
    if not ((source != SOURCE_NONE) & (source != SOURCE_SYNTHETIC) & positive).any():
        # No positive at all (e.g. no signals): fall back to positive-unlabelled learning -
        # the unlabelled real QAs, mostly fine, stand for the positive class.
        unlabelled = np.zeros(n, bool)
        unlabelled[:n_real] = source[:n_real] != SOURCE_HUMAN
        y[unlabelled] = 1
        confidence[unlabelled] = 1.0
        source[unlabelled] = SOURCE_WEAK
        positive = y >= 0.5

    noisy = (source == SOURCE_WEAK) | (source == SOURCE_SYNTHETIC)
    weight = np.zeros(n, np.float32)
    for cls_rows in (noisy & positive, noisy & ~positive):
        mass = float(confidence[cls_rows].sum())
        if mass > 0:
            weight[cls_rows] = confidence[cls_rows] * (
                float(confidence[noisy].sum()) / (2.0 * mass)
            )
    human_rows = source == SOURCE_HUMAN
    weight[human_rows] = human_weight

    rng = np.random.default_rng(seed)
    train = np.zeros(n, bool)
    val = np.zeros(n, bool)
    for cls in (False, True):
        rows = rng.permutation(np.flatnonzero(noisy & (weight > 0) & (positive == cls)))
        n_val = round(val_fraction * len(rows)) if len(rows) >= 5 else 0
        val[rows[:n_val]] = True
        train[rows[n_val:]] = True
    train |= human_rows
    val |= human_rows
    return TrainTargets(y, weight, source, train, val)
