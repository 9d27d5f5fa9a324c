"""Micrograph transformation tasks: two views of one figure related by a known transformation.

Families: rotation (angle, direction), translation (direction, distance as a fraction of the
field width), zoom (factor, in/out) and composition (two of these). The transformation that
maps view 1 to view 2 is, in the conventions of `imaging`:

* the field of view moves by t (a fraction of the view-1 width, directions as seen in view 1),
* then the content turns θ degrees clockwise and is magnified z times, both about the centre
  of view 2:   q2 = z · R(θ) · (q1 − t·S)   for view offsets q (y down), view size S.

Views are always crops from inside the figure (every corner of both sampled squares lies in
the image), so no empty border gives the answer away, and view 1 itself is turned by a random
angle so that neither view is "the upright original". An item is kept only when the key
explains the pair clearly better than every distractor (`option_scores`), so items built on
flat or symmetric crops are re-drawn rather than written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from microvqa_tui.pipeline.spatial.common import (
    GENERATOR_VERSION,
    RenderedImage,
    SpatialConfig,
    SpatialItem,
    family_rng,
    shuffle_options,
)
from microvqa_tui.pipeline.spatial.imaging import (
    SourceImage,
    ViewGeom,
    bilinear,
    compose_panels,
    encode,
    grey,
    ncc,
    rot_cw,
    texture_coverage,
    texture_score,
)
from microvqa_tui.pipeline.spatial.microtransform import (
    DIRECTIONS,
    MicroTransform,
    factor_text,
    make_distractors,
    sample_key,
)

COMPOSITION_PAIRS = (("rotation", "zoom"), ("translation", "rotation"), ("translation", "zoom"))

MIN_TEXTURE = 12.0  # grey-level std of a view (0–255)
MIN_COVERAGE = 0.6  # share of a view's 4×4 tiles that must show structure
MIN_KEY_SCORE = 0.55  # correlation of view 2 with view 1 under the key
MIN_MARGIN = 0.12  # ... minus the best distractor's
SCORE_SIZE = 96  # views are compared at this size
A_MIN, A_MAX = 0.5, 2.5  # source pixels per view pixel (≤ 2× up-sampling)
REDRAW_EVERY = 10  # failed attempts before the key itself is drawn again

# --------------------------------------------------------------------------- geometry


def view2_of(view1: ViewGeom, transform: MicroTransform, size: int) -> ViewGeom:
    """The view that `transform` makes of `view1` (see the module docstring)."""
    shift = view1.a * rot_cw(view1.phi) @ (transform.t * size)
    return ViewGeom(
        cx=view1.cx + float(shift[0]),
        cy=view1.cy + float(shift[1]),
        phi=view1.phi - transform.theta,
        a=view1.a / transform.z,
    )


def sample_geometry(
    width: int, height: int, transform: MicroTransform, size: int, rng: np.random.Generator
) -> tuple[ViewGeom, ViewGeom] | None:
    """A random view 1 (position, turn, scale) such that both views lie inside the figure."""
    a_hi = A_MAX
    margin = 3.0
    for _ in range(12):
        if a_hi < A_MIN:
            return None
        a1 = math.exp(rng.uniform(math.log(A_MIN), math.log(a_hi)))
        phi1 = round(float(rng.uniform(0, 360)), 2)
        probe1 = ViewGeom(0.0, 0.0, phi1, a1)
        probe2 = view2_of(probe1, transform, size)
        corners = np.vstack([probe1.corners(size), probe2.corners(size)])
        lo = -corners.min(axis=0) + margin
        hi = np.array([width, height]) - corners.max(axis=0) - margin
        if (hi <= lo).any():
            a_hi = a1 * 0.85
            continue
        cx = round(float(rng.uniform(lo[0], hi[0])), 2)
        cy = round(float(rng.uniform(lo[1], hi[1])), 2)
        view1 = ViewGeom(cx, cy, phi1, round(a1, 6))
        view2 = view2_of(view1, transform, size)
        if view1.inside(width, height, size) and view2.inside(width, height, size):
            return view1, view2
    return None


def option_scores(
    view1: Image.Image, view2: Image.Image, options: list[MicroTransform], size: int = SCORE_SIZE
) -> list[float]:
    """How well each candidate transformation explains view 2 from view 1: the normalised
    correlation over the overlap, computed in whichever view the overlap covers more of."""
    g1, g2 = grey(view1, size), grey(view2, size)
    centres = np.arange(size) + 0.5
    px, py = np.meshgrid(centres, centres)
    q = np.stack([px.ravel() - size / 2, py.ravel() - size / 2])
    scores: list[float] = []
    for option in options:
        t = option.t * size
        # view-2 frame: where each view-2 pixel was in view 1
        q1 = rot_cw(-option.theta) @ q / option.z + t[:, None]
        v_a, m_a = bilinear(g1, q1[0] + size / 2, q1[1] + size / 2)
        # view-1 frame: where each view-1 pixel went in view 2
        q2 = option.z * rot_cw(option.theta) @ (q - t[:, None])
        v_b, m_b = bilinear(g2, q2[0] + size / 2, q2[1] + size / 2)
        if m_a.mean() >= m_b.mean():
            frac, score = m_a.mean(), ncc(g2.ravel()[m_a], v_a[m_a]) if m_a.any() else 0.0
        else:
            frac, score = m_b.mean(), ncc(g1.ravel()[m_b], v_b[m_b]) if m_b.any() else 0.0
        scores.append(float(score) if frac >= 0.1 else -1.0)
    return scores


# --------------------------------------------------------------------------- text


QUESTIONS = {
    "rotation": (
        "Views 1 and 2 show the same field of a micrograph; view 2 was obtained by rotating "
        "view 1 about its centre. Which rotation maps view 1 onto view 2?"
    ),
    "translation": (
        "Views 1 and 2 show overlapping fields of the same micrograph at the same "
        "magnification and orientation. How was the field of view moved to go from view 1 to "
        "view 2? (Directions as seen in view 1; distance as a fraction of the field width.)"
    ),
    "zoom": (
        "View 2 shows the same micrograph as view 1, centred on the same point, at a different "
        "magnification. Which change of magnification maps view 1 onto view 2?"
    ),
    "composition": (
        "View 2 was obtained from view 1 by combining two operations: a move of the field of "
        "view (direction as seen in view 1, distance as a fraction of the view-1 field width) "
        "and/or a rotation or change of magnification about the centre of view 2. Which "
        "combination maps view 1 onto view 2?"
    ),
}


def _cot(kinds: tuple[str, ...], key: MicroTransform, distractors: list[MicroTransform]) -> str:
    steps = []
    if "translation" in kinds:
        steps.append(
            "Features near the edge of view 1 reappear displaced in view 2: the content shifted "
            f"{DIRECTIONS[((key.direction or 0) + 4) % 8]}, so the field of view itself moved "
            f"{DIRECTIONS[key.direction or 0]} by about {round(key.distance * 100)}% of its width."
        )
    if "rotation" in kinds:
        sense = "clockwise" if key.theta > 0 else "counter-clockwise"
        steps.append(
            f"Matching landmarks around the centre turn {sense}; the angle between a landmark's "
            f"direction in the two views is {abs(key.theta)}°."
        )
    if "zoom" in kinds:
        steps.append(
            f"Structures in view 2 are {factor_text(key.zoom_factor)} times "
            f"{'larger' if key.zoom_in else 'smaller'} than in view 1 and view 2 covers "
            f"{'less' if key.zoom_in else 'more'} of the specimen, so the image was zoomed "
            f"{'in' if key.zoom_in else 'out'} {factor_text(key.zoom_factor)}×."
        )
    mirror = distractors[0].describe() if distractors else ""
    tail = (
        f" The opposite option ({mirror[0].lower() + mirror[1:]}) would turn, shift or scale "
        "view 1 the other way and does not reproduce view 2."
        if mirror
        else ""
    )
    return " ".join(steps) + tail + f" Answer: {key.describe()}."


# --------------------------------------------------------------------------- items


@dataclass
class LoadedFigure:
    figure_id: str
    image: SourceImage
    article_id: str = ""
    license: str = ""
    attribution: str = ""


FigureLoader = Callable[[str], "LoadedFigure | None"]


def family_kinds(family: str, rng: np.random.Generator) -> tuple[str, ...]:
    if family == "composition":
        return COMPOSITION_PAIRS[rng.integers(len(COMPOSITION_PAIRS))]
    return (family,)


@dataclass
class _Question:
    """The drawn key of one item, its distractors and the shuffled options."""

    family: str
    kinds: tuple[str, ...]
    key: MicroTransform
    distractors: list[MicroTransform]
    options: list[MicroTransform]
    correct: int


@dataclass
class _Pair:
    """Two views sampled from one figure, and how well each option explains them."""

    figure: LoadedFigure
    view1: ViewGeom
    view2: ViewGeom
    img1: Image.Image
    img2: Image.Image
    scores: list[float]


def _draw_question(family: str, cfg: SpatialConfig, rng: np.random.Generator) -> _Question | None:
    kinds = family_kinds(family, rng)
    key = sample_key(kinds, cfg, rng)
    distractors = make_distractors(kinds, key, cfg, rng)
    if distractors is None:
        return None
    options, correct = shuffle_options(key, distractors, rng)
    return _Question(family, kinds, key, distractors, options, correct)


def generate_micro_item(
    family: str,
    index: int,
    figure_ids: list[str],
    load: FigureLoader,
    cfg: SpatialConfig,
) -> SpatialItem | None:
    """Item `index` of a micrograph family, or None when no figure gave a clear pair."""
    if not figure_ids:
        return None
    rng = family_rng(cfg.seed, family, index)
    for attempt in range(cfg.max_attempts):
        if attempt % REDRAW_EVERY == 0:  # a key no figure shows clearly is re-drawn
            question = _draw_question(family, cfg, rng)
            if question is None:
                return None
        figure = load(figure_ids[int(rng.integers(len(figure_ids)))])
        if figure is None:
            continue
        pair = _sample_pair(figure, question, cfg.view_size, rng)
        if pair is not None:
            return _build_item(index, question, pair, cfg)
    return None


def _sample_pair(
    figure: LoadedFigure, q: _Question, size: int, rng: np.random.Generator
) -> _Pair | None:
    """Two views of `figure` related by the key, or None when they are too flat or the key
    does not explain them clearly better than every distractor."""
    src = figure.image
    geometry = sample_geometry(src.width, src.height, q.key, size, rng)
    if geometry is None:
        return None
    view1, view2 = geometry
    img1, img2 = src.sample(view1, size), src.sample(view2, size)
    if min(texture_score(img1), texture_score(img2)) < MIN_TEXTURE:
        return None
    if min(texture_coverage(img1), texture_coverage(img2)) < MIN_COVERAGE:
        return None
    scores = option_scores(img1, img2, q.options)
    key_score = scores[q.correct]
    best_other = max(s for i, s in enumerate(scores) if i != q.correct)
    if key_score < MIN_KEY_SCORE or key_score - best_other < MIN_MARGIN:
        return None
    return _Pair(figure, view1, view2, img1, img2, scores)


def _build_item(index: int, q: _Question, pair: _Pair, cfg: SpatialConfig) -> SpatialItem:
    figure = pair.figure
    params: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "family": q.family,
        "seed": cfg.seed,
        "index": index,
        "components": list(q.kinds),
        "source_figure_id": figure.figure_id,
        "source_size": [figure.image.width, figure.image.height],
        "view_size": cfg.view_size,
        "view1": pair.view1.to_params(),
        "view2": pair.view2.to_params(),
        "transform": q.key.to_params(),
        "options": [o.to_params() for o in q.options],
        "option_scores": [round(s, 4) for s in pair.scores],
        "config": cfg.to_params(),
        "conventions": "x right, y down; rotation_cw_deg = clockwise turn of the content; "
        "shift = field move in view-1 widths (view-1 frame); zoom = magnification view 1 -> 2",
    }
    images = _images(pair, cfg, params)
    question = QUESTIONS[q.family]
    if cfg.layout == "pair":  # two separate images rather than labelled panels
        question = re.sub(r"\b([Vv])iews? (?=1|2)|\b([Vv])iew(?=-1)", _image_word, question)
    return SpatialItem(
        family=q.family,
        question=question,
        choices=[o.describe() for o in q.options],
        correct_index=q.correct,
        cot=_cot(q.kinds, q.key, q.distractors),
        params=params,
        images=images,
        source={
            "source": f"figure:{figure.figure_id}",
            "original_id": figure.figure_id,
            "article_id": figure.article_id,
            "license": figure.license,
            "attribution": figure.attribution,
        },
    )


def _images(pair: _Pair, cfg: SpatialConfig, params: dict[str, Any]) -> list[RenderedImage]:
    """One two-panel figure (its panel boxes go to `params`) or the two views apart."""
    fmt, size = cfg.micro_format, cfg.view_size
    if cfg.layout == "panels":
        figure_img, boxes = compose_panels([pair.img1, pair.img2])
        params["panels"] = boxes
        return [RenderedImage(encode(figure_img, fmt), *figure_img.size, "panels", fmt)]
    return [
        RenderedImage(encode(pair.img1, fmt), size, size, "view1", fmt),
        RenderedImage(encode(pair.img2, fmt), size, size, "view2", fmt),
    ]


def _image_word(match: re.Match) -> str:
    word = match.group(0)
    return ("I" if word[0] == "V" else "i") + "mage" + word[4:]
