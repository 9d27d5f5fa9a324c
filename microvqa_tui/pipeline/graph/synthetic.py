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


@dataclass
class PlantConfig:
    """The knobs of `planted` (see its docstring and the module's)."""

    n_figures: int = 300
    qas_per_caption: tuple[int, int] = (2, 6)
    n_topics: int = 12
    latent_dim: int = 16
    text_dim: int = 48
    clip_dim: int = 48
    second_caption_rate: float = 0.15
    corrupt_fraction: float = 0.2
    contradicted_share: float = 0.5
    clustered: float = 0.0
    missing: dict[str, float] | None = None
    qa_clip: bool = True
    caption_clip: bool = True
    relational: dict[str, float] | None = None
    seed: int = 0


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
    cfg = PlantConfig(
        n_figures, qas_per_caption, n_topics, latent_dim, text_dim, clip_dim,
        second_caption_rate, corrupt_fraction, contradicted_share, clustered, missing,
        qa_clip, caption_clip, relational, seed,
    )  # fmt: skip
    return plant_data(cfg)


def plant_data(cfg: PlantConfig) -> PlantedData:
    """The planted data set of `cfg`. Every step draws from the same generator in a fixed
    order (figures, captions, QAs, corruption, signals, availability), so a seed gives the
    same data; relational corruption draws from a second one."""
    rng = np.random.default_rng(cfg.seed)
    rng_rel = np.random.default_rng([cfg.seed, 7])
    s = _figures(cfg, rng, rng_rel)
    _captions(cfg, rng, s)
    _qas(cfg, rng, s)
    _corrupt(cfg, rng, s)
    _signals(rng, s)
    ok = _availability(cfg, rng, len(s["kind"]))
    extra: dict = {}
    if cfg.relational:
        plant(s, rng_rel, cfg.relational)
        if "siblings" in s:
            extra["siblings"] = s["siblings"]
    return PlantedData(_inputs(cfg, s, ok), s["kind"], s["quality"], extra)


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _figures(cfg: PlantConfig, rng: np.random.Generator, rng_rel: np.random.Generator) -> dict:
    """Figures: topic centres, latent vectors, CLIP image embeddings, projections."""
    centres = 2.0 * _normal(rng, cfg.n_topics, cfg.latent_dim)
    topic = rng.integers(cfg.n_topics, size=cfg.n_figures)
    z_fig = centres[topic] + _normal(rng, cfg.n_figures, cfg.latent_dim)
    lo, hi = cfg.qas_per_caption
    qas_per_figure = (1 + cfg.second_caption_rate) * (lo + hi) / 2
    share = (cfg.relational or {}).get("near_duplicate", 0.0)
    pairs = near_duplicate_pairs(z_fig, rng_rel, share * qas_per_figure)
    p_clip = _normal(rng, cfg.latent_dim, cfg.clip_dim) / np.sqrt(cfg.latent_dim)
    p_text = _normal(rng, cfg.latent_dim, cfg.text_dim) / np.sqrt(cfg.latent_dim)
    image_clip = z_fig @ p_clip + 0.5 * _normal(rng, cfg.n_figures, cfg.clip_dim)
    return {
        "topic": topic, "z_fig": z_fig, "pairs": pairs, "p_clip": p_clip, "p_text": p_text,
        "image_clip": image_clip,
    }  # fmt: skip


def _captions(cfg: PlantConfig, rng: np.random.Generator, s: dict) -> None:
    """Captions: one per figure, some figures a second one; each with a quality."""
    n_figures = cfg.n_figures
    extra_caps = np.flatnonzero(rng.random(n_figures) < cfg.second_caption_rate)
    caption_figure = np.concatenate([np.arange(n_figures), extra_caps])
    n_caps = len(caption_figure)
    z_cap = s["z_fig"][caption_figure] + 0.3 * _normal(rng, n_caps, cfg.latent_dim)
    s["caption_text"] = z_cap @ s["p_text"] + 0.5 * _normal(rng, n_caps, cfg.text_dim)
    quality = rng.beta(6.0, 2.0, size=n_caps).astype(np.float32)
    # A poor caption matches its image less well (CLIP image-caption similarity drops).
    noise = (0.5 + 1.5 * (1 - quality))[:, None] * _normal(rng, n_caps, cfg.clip_dim)
    s["caption_clip"] = z_cap @ s["p_clip"] + noise
    s.update(caption_figure=caption_figure, z_cap=z_cap, quality=quality)


def _qas(cfg: PlantConfig, rng: np.random.Generator, s: dict) -> None:
    """QAs written from each caption, each adding its own aspect."""
    lo, hi = cfg.qas_per_caption
    n_caps = len(s["caption_figure"])
    per_cap = rng.integers(lo, hi + 1, size=n_caps)
    qa_caption = np.repeat(np.arange(n_caps), per_cap)
    n = len(qa_caption)
    z_qa = s["z_cap"][qa_caption] + 0.7 * _normal(rng, n, cfg.latent_dim)
    s["qa_text"] = z_qa @ s["p_text"] + 0.5 * _normal(rng, n, cfg.text_dim)
    s["qa_clip"] = z_qa @ s["p_clip"] + 1.0 * _normal(rng, n, cfg.clip_dim)
    s.update(qa_caption=qa_caption, qa_figure=s["caption_figure"][qa_caption].copy())


def _corrupt(cfg: PlantConfig, rng: np.random.Generator, s: dict) -> None:
    """Mark `corrupt_fraction` of the QAs wrong-figure or contradicted, and move the
    wrong-figure ones to another figure's first caption."""
    qa_caption, qa_figure = s["qa_caption"], s["qa_figure"]
    n = len(qa_caption)
    kind = np.full(n, CLEAN, np.int8)
    n_bad = int(np.floor(cfg.corrupt_fraction * n + 0.5))
    if cfg.clustered > 0:  # corruption concentrates on the QAs of poor captions
        poor = (1.0 - s["quality"][qa_caption].astype(np.float64)) ** 3
        p = (1 - cfg.clustered) / n + cfg.clustered * poor / poor.sum()
        bad = rng.choice(n, size=n_bad, replace=False, p=p / p.sum())
    else:
        bad = rng.choice(n, size=n_bad, replace=False)
    n_contra = int(np.floor(cfg.contradicted_share * n_bad + 0.5))
    kind[bad[:n_contra]] = CONTRADICTED
    kind[bad[n_contra:]] = WRONG_FIGURE
    wrong = np.flatnonzero(kind == WRONG_FIGURE)
    if len(wrong) and cfg.n_figures > 1:
        r = rng.integers(cfg.n_figures - 1, size=len(wrong))
        new_fig = r + (r >= qa_figure[wrong])
        qa_figure[wrong] = new_fig
        # The first caption of a figure is the figure's own index (see caption_figure).
        qa_caption[wrong] = new_fig
    contra = kind == CONTRADICTED
    s["qa_text"][contra] += 0.2 * _normal(rng, int(contra.sum()), cfg.text_dim)
    s["kind"] = kind


def _signals(rng: np.random.Generator, s: dict) -> None:
    """Similarities, the NLI triple and agent votes, from the story plus noise."""
    qa_caption, qa_figure, kind = s["qa_caption"], s["qa_figure"], s["kind"]
    n = len(kind)
    s["text_sim"] = _unit_rows_cos(s["caption_text"][qa_caption], s["qa_text"]) + 0.03 * _normal(
        rng, n
    )
    s["clip_qa"] = _unit_rows_cos(s["image_clip"][qa_figure], s["qa_clip"]) + 0.05 * _normal(rng, n)
    pair = _unit_rows_cos(s["image_clip"][s["caption_figure"]], s["caption_clip"])
    s["clip_cap_pair"] = pair
    s["clip_cap"] = pair[qa_caption] + 0.02 * _normal(rng, n)
    q = s["quality"][qa_caption]
    s["nli"] = _nli(rng, kind, q)
    clean = kind == CLEAN
    s["agree"] = (rng.random(n) < np.where(clean, 0.55 + 0.4 * q, 0.35)).astype(np.float32)
    s["support"] = (rng.random(n) < np.where(clean, 0.8, 0.35)).astype(np.float32)


def _nli(rng: np.random.Generator, kind: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Entail / neutral / contradict probabilities: a softmax of noisy logits by kind."""
    n = len(kind)
    clean, wrong_m, contra = kind == CLEAN, kind == WRONG_FIGURE, kind == CONTRADICTED
    e = np.where(clean, 2.0 + 2.5 * (q - 0.75), 0.0) + 1.2 * _normal(rng, n)
    nn_ = np.where(clean, 0.3, 0.0) + _normal(rng, n)
    c = np.where(clean, -1.5, 0.0) + _normal(rng, n)
    e = np.where(wrong_m, -0.8 + 1.2 * _normal(rng, n), e)
    nn_ = np.where(wrong_m, 1.5 + _normal(rng, n), nn_)
    c = np.where(wrong_m, -1.0 + _normal(rng, n), c)
    detected = contra & (rng.random(n) < 0.6)
    missed = contra & ~detected
    e = np.where(detected, -0.5 + _normal(rng, n), np.where(missed, 1.2 + 1.2 * _normal(rng, n), e))
    nn_ = np.where(contra, 0.2 + _normal(rng, n), nn_)
    c = np.where(detected, 2.0 + _normal(rng, n), np.where(missed, -0.5 + _normal(rng, n), c))
    return _softmax3(e, nn_, c).astype(np.float32)


def _availability(cfg: PlantConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Which QAs have each signal (the rest are missing, as in real runs)."""
    missing = {**DEFAULT_MISSING, **(cfg.missing or {})}

    def avail(key: str) -> np.ndarray:
        return rng.random(n) >= missing.get(key, 0.0)

    ok = {"nli": avail("nli")}
    ok["clip_image_qa"] = avail("clip_image_qa") if cfg.qa_clip else np.zeros(n, bool)
    ok["text_qa"] = avail("text_qa")
    ok["agent_agreement"] = avail("agent_agreement")
    ok["agent_supported"] = avail("agent_supported")
    return ok


def _inputs(cfg: PlantConfig, s: dict, ok: dict[str, np.ndarray]) -> GraphInputs:
    """The graph inputs (ids, links, signal tables, embeddings) of the planted world."""
    n, n_caps, n_figures = len(s["kind"]), len(s["caption_figure"]), cfg.n_figures
    nli = s["nli"]
    columns = {
        "nli_entail": (nli[:, 0], ok["nli"]),
        "nli_neutral": (nli[:, 1], ok["nli"]),
        "nli_contradict": (nli[:, 2], ok["nli"]),
        "text_caption_qa": (s["text_sim"], ok["text_qa"]),
        "clip_image_qa": (s["clip_qa"], ok["clip_image_qa"]),
        "clip_image_caption": (s["clip_cap"], np.full(n, cfg.caption_clip)),
        "agent_agreement": (s["agree"], ok["agent_agreement"]),
        "agent_supported": (s["support"], ok["agent_supported"]),
    }
    caption_ok = np.full(n_caps, cfg.caption_clip)
    embeddings = {
        "image": {"clip": Embeddings(s["image_clip"], np.ones(n_figures, bool))},
        "caption": {"text": Embeddings(s["caption_text"], np.ones(n_caps, bool))},
        "qa": {"text": Embeddings(s["qa_text"], ok["text_qa"])},
    }
    if cfg.caption_clip:
        embeddings["caption"]["clip"] = Embeddings(s["caption_clip"], np.ones(n_caps, bool))
    if cfg.qa_clip:
        embeddings["qa"]["clip"] = Embeddings(s["qa_clip"], ok["clip_image_qa"])
    return GraphInputs(
        qa_ids=[f"qa{i}" for i in range(n)],
        figure_ids=[f"fig{i}" for i in range(n_figures)],
        caption_ids=[f"cap{i}" for i in range(n_caps)],
        qa_figure=s["qa_figure"],
        qa_caption=s["qa_caption"],
        caption_figure=s["caption_figure"],
        signals=SignalTable.from_columns(n, columns),
        caption_signals=SignalTable.from_columns(
            n_caps, {"clip_image_caption": (s["clip_cap_pair"], caption_ok)}
        ),
        embeddings=embeddings,
    )
