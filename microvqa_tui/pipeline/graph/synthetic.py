"""A planted data set for tests and benchmarks: figures, captions, QAs, signals, embeddings,
with a known fraction of corrupted QAs.

Generative story: figures belong to topics; a figure's latent vector gives its CLIP image
embedding, its captions' text (and CLIP) embeddings, and the embeddings of the QAs written
from each caption (a QA adds its own aspect). Captions have a quality in (0, 1): QAs of poor
captions get weaker signals without being wrong. A fixed fraction of QAs is corrupted:

* wrong figure - the QA hangs off another figure's caption and image (its text stays about
  its own figure), so similarities are low and NLI says "neutral";
* contradicted - the answer is negated: NLI says "contradiction" (60% of the time; it misses
  the rest), similarities barely move.

With `clustered` > 0 that share of the corruption falls on the QAs of poor captions (a vague
caption makes the generator err in several of its QAs) instead of uniformly at random; a
poor caption also has a lower CLIP image-caption similarity.

Signals follow from that with noise: `text_caption_qa` / `clip_image_qa` /
`clip_image_caption` are embedding cosines plus noise (CLIP ones weak), the NLI triple is a
softmax of noisy logits, agent signals are Bernoulli draws. Some signals are missing for a
fraction of QAs, as in real runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from microvqa_tui.pipeline.graph.inputs import Embeddings, GraphInputs, SignalTable
from microvqa_tui.pipeline.graph.relational import RELATIONAL_KINDS, near_duplicate_pairs, plant

CLEAN, WRONG_FIGURE, CONTRADICTED = -1, 0, 1
KIND_NAMES = {WRONG_FIGURE: "wrong_figure", CONTRADICTED: "contradicted"} | {
    code: name for name, code in RELATIONAL_KINDS.items()
}

DEFAULT_MISSING = {
    "nli": 0.1,
    "clip_image_qa": 0.3,
    "agent_agreement": 0.4,
    "agent_supported": 0.5,
    "text_qa": 0.03,
}


@dataclass
class PlantedData:
    inputs: GraphInputs
    kind: np.ndarray  # (N,) CLEAN | WRONG_FIGURE | CONTRADICTED | a relational kind
    caption_quality: np.ndarray  # (n_captions,)
    extra: dict = field(default_factory=dict)

    @property
    def consistent(self) -> np.ndarray:
        return self.kind == CLEAN


def _unit_rows_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = np.einsum("ij,ij->i", a, b)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (num / np.maximum(den, 1e-12)).astype(np.float32)


def _softmax3(e, n, c):
    stack = np.stack([e, n, c], axis=1)
    stack -= stack.max(1, keepdims=True)
    p = np.exp(stack)
    return p / p.sum(1, keepdims=True)


def planted(
    n_figures: int = 300,
    qas_per_caption: tuple[int, int] = (2, 6),
    *,
    n_topics: int = 12,
    latent_dim: int = 16,
    text_dim: int = 48,
    clip_dim: int = 48,
    second_caption_rate: float = 0.15,
    corrupt_fraction: float = 0.2,
    contradicted_share: float = 0.5,
    clustered: float = 0.0,
    missing: dict[str, float] | None = None,
    qa_clip: bool = True,
    caption_clip: bool = True,
    relational: dict[str, float] | None = None,
    seed: int = 0,
) -> PlantedData:
    """`relational`: share of the QAs given each relational corruption (see `relational`),
    on top of `corrupt_fraction`; drawn from a second generator, so the rest is unchanged."""
    rng = np.random.default_rng(seed)
    rng_rel = np.random.default_rng([seed, 7])
    relational = relational or {}
    missing = {**DEFAULT_MISSING, **(missing or {})}
    f32 = np.float32

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=f32)

    centres = 2.0 * normal(n_topics, latent_dim)
    topic = rng.integers(n_topics, size=n_figures)
    z_fig = centres[topic] + normal(n_figures, latent_dim)
    qas_per_figure = (1 + second_caption_rate) * (qas_per_caption[0] + qas_per_caption[1]) / 2
    pairs = near_duplicate_pairs(
        z_fig, rng_rel, relational.get("near_duplicate", 0.0) * qas_per_figure
    )
    p_clip = normal(latent_dim, clip_dim) / np.sqrt(latent_dim)
    p_text = normal(latent_dim, text_dim) / np.sqrt(latent_dim)
    image_clip = z_fig @ p_clip + 0.5 * normal(n_figures, clip_dim)

    # Captions: one per figure, some figures a second one.
    extra_caps = np.flatnonzero(rng.random(n_figures) < second_caption_rate)
    caption_figure = np.concatenate([np.arange(n_figures), extra_caps])
    n_caps = len(caption_figure)
    z_cap = z_fig[caption_figure] + 0.3 * normal(n_caps, latent_dim)
    caption_text = z_cap @ p_text + 0.5 * normal(n_caps, text_dim)
    quality = rng.beta(6.0, 2.0, size=n_caps).astype(f32)
    # A poor caption matches its image less well (CLIP image-caption similarity drops).
    caption_clip_emb = z_cap @ p_clip + (0.5 + 1.5 * (1 - quality))[:, None] * normal(
        n_caps, clip_dim
    )

    # QAs written from each caption.
    lo, hi = qas_per_caption
    per_cap = rng.integers(lo, hi + 1, size=n_caps)
    qa_caption = np.repeat(np.arange(n_caps), per_cap)
    n = len(qa_caption)
    qa_figure = caption_figure[qa_caption].copy()
    z_qa = z_cap[qa_caption] + 0.7 * normal(n, latent_dim)
    qa_text = z_qa @ p_text + 0.5 * normal(n, text_dim)
    qa_clip_emb = z_qa @ p_clip + 1.0 * normal(n, clip_dim)

    # Corruption.
    kind = np.full(n, CLEAN, np.int8)
    n_bad = int(np.floor(corrupt_fraction * n + 0.5))
    if clustered > 0:  # corruption concentrates on the QAs of poor captions
        poor = (1.0 - quality[qa_caption].astype(np.float64)) ** 3
        p = (1 - clustered) / n + clustered * poor / poor.sum()
        bad = rng.choice(n, size=n_bad, replace=False, p=p / p.sum())
    else:
        bad = rng.choice(n, size=n_bad, replace=False)
    n_contra = int(np.floor(contradicted_share * n_bad + 0.5))
    kind[bad[:n_contra]] = CONTRADICTED
    kind[bad[n_contra:]] = WRONG_FIGURE
    wrong = np.flatnonzero(kind == WRONG_FIGURE)
    if len(wrong) and n_figures > 1:
        r = rng.integers(n_figures - 1, size=len(wrong))
        new_fig = r + (r >= qa_figure[wrong])
        qa_figure[wrong] = new_fig
        # The first caption of a figure is the figure's own index (see caption_figure).
        qa_caption[wrong] = new_fig
    contra = kind == CONTRADICTED
    qa_text[contra] += 0.2 * normal(int(contra.sum()), text_dim)

    q = quality[qa_caption]
    clean = kind == CLEAN
    wrong_m = kind == WRONG_FIGURE

    text_sim = _unit_rows_cos(caption_text[qa_caption], qa_text) + 0.03 * normal(n)
    clip_qa = _unit_rows_cos(image_clip[qa_figure], qa_clip_emb) + 0.05 * normal(n)
    clip_cap_pair = _unit_rows_cos(image_clip[caption_figure], caption_clip_emb)
    clip_cap = clip_cap_pair[qa_caption] + 0.02 * normal(n)

    e = np.where(clean, 2.0 + 2.5 * (q - 0.75), 0.0) + 1.2 * normal(n)
    nn_ = np.where(clean, 0.3, 0.0) + normal(n)
    c = np.where(clean, -1.5, 0.0) + normal(n)
    e = np.where(wrong_m, -0.8 + 1.2 * normal(n), e)
    nn_ = np.where(wrong_m, 1.5 + normal(n), nn_)
    c = np.where(wrong_m, -1.0 + normal(n), c)
    detected = contra & (rng.random(n) < 0.6)
    missed = contra & ~detected
    e = np.where(detected, -0.5 + normal(n), np.where(missed, 1.2 + 1.2 * normal(n), e))
    nn_ = np.where(contra, 0.2 + normal(n), nn_)
    c = np.where(detected, 2.0 + normal(n), np.where(missed, -0.5 + normal(n), c))
    nli = _softmax3(e, nn_, c).astype(f32)

    p_agree = np.where(clean, 0.55 + 0.4 * q, 0.35)
    agree = (rng.random(n) < p_agree).astype(f32)
    p_support = np.where(clean, 0.8, 0.35)
    support = (rng.random(n) < p_support).astype(f32)

    def avail(key: str) -> np.ndarray:
        return rng.random(n) >= missing.get(key, 0.0)

    nli_ok = avail("nli")
    clip_qa_ok = avail("clip_image_qa") if qa_clip else np.zeros(n, bool)
    text_qa_ok = avail("text_qa")
    extra: dict = {}
    if relational:
        state = {
            "kind": kind, "qa_figure": qa_figure, "qa_caption": qa_caption,
            "caption_figure": caption_figure, "quality": quality, "z_fig": z_fig,
            "p_text": p_text, "p_clip": p_clip, "image_clip": image_clip,
            "caption_text": caption_text, "caption_clip": caption_clip_emb,
            "qa_text": qa_text, "qa_clip": qa_clip_emb, "text_sim": text_sim,
            "clip_qa": clip_qa, "clip_cap": clip_cap, "clip_cap_pair": clip_cap_pair,
            "nli": nli, "agree": agree, "support": support, "pairs": pairs, "topic": topic,
        }  # fmt: skip
        plant(state, rng_rel, relational)
        if "siblings" in state:
            extra["siblings"] = state["siblings"]
    columns = {
        "nli_entail": (nli[:, 0], nli_ok),
        "nli_neutral": (nli[:, 1], nli_ok),
        "nli_contradict": (nli[:, 2], nli_ok),
        "text_caption_qa": (text_sim, text_qa_ok),
        "clip_image_qa": (clip_qa, clip_qa_ok),
        "clip_image_caption": (clip_cap, np.ones(n, bool) if caption_clip else np.zeros(n, bool)),
        "agent_agreement": (agree, avail("agent_agreement")),
        "agent_supported": (support, avail("agent_supported")),
    }
    signals = SignalTable.from_columns(n, columns)
    caption_signals = SignalTable.from_columns(
        n_caps, {"clip_image_caption": (clip_cap_pair, np.full(n_caps, caption_clip))}
    )
    embeddings = {
        "image": {"clip": Embeddings(image_clip, np.ones(n_figures, bool))},
        "caption": {"text": Embeddings(caption_text, np.ones(n_caps, bool))},
        "qa": {"text": Embeddings(qa_text, text_qa_ok)},
    }
    if caption_clip:
        embeddings["caption"]["clip"] = Embeddings(caption_clip_emb, np.ones(n_caps, bool))
    if qa_clip:
        embeddings["qa"]["clip"] = Embeddings(qa_clip_emb, clip_qa_ok)
    inputs = GraphInputs(
        qa_ids=[f"qa{i}" for i in range(n)],
        figure_ids=[f"fig{i}" for i in range(n_figures)],
        caption_ids=[f"cap{i}" for i in range(n_caps)],
        qa_figure=qa_figure,
        qa_caption=qa_caption,
        caption_figure=caption_figure,
        signals=signals,
        caption_signals=caption_signals,
        embeddings=embeddings,
    )
    return PlantedData(inputs, kind, quality, extra)
