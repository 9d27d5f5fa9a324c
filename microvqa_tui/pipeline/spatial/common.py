"""What every family produces, the knobs they share, and deterministic randomness."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from microvqa_tui.errors import PipelineError
from microvqa_tui.vocabulary import FAMILY_SPATIAL_PREFIX, ORIGIN_SPATIAL

GENERATOR_VERSION = "spatial-1"

MICRO_FAMILIES = ("rotation", "translation", "zoom", "composition")
MOL_VIEW_FAMILIES = ("mol_rotation", "mol_translation", "mol_zoom")
INTERACTION_FAMILIES = ("contacts", "interaction_site", "hbond")
FAMILIES = MICRO_FAMILIES + MOL_VIEW_FAMILIES + INTERACTION_FAMILIES
FAMILY_PREFIX = FAMILY_SPATIAL_PREFIX
ORIGIN = ORIGIN_SPATIAL
SOURCE_KIND = "spatial"

Closeness = Literal["near", "medium", "far"]
CLOSENESS_STEPS = {"near": 1, "medium": 2, "far": 3}


@dataclass(frozen=True)
class SpatialConfig:
    """Generator settings; every field is recorded with each item and in the run record."""

    families: tuple[str, ...] = FAMILIES
    count: int = 10  # items per family
    seed: int = 0
    angle_step: int = 15  # degrees between candidate rotation angles
    closeness: Closeness = "medium"  # how far distractors sit from the key
    n_choices: int = 4
    layout: Literal["panels", "pair"] = "panels"  # one two-panel figure or two images
    view_size: int = 256  # pixels per micrograph view
    micro_format: Literal["JPEG", "PNG"] = "JPEG"  # encoding of micrograph views
    mol_view_size: int = 320  # pixels per molecule view
    contact_cutoff: float = 4.0  # Å, heavy atom–heavy atom
    hbond_distance: float = 3.5  # Å, donor–acceptor
    hbond_angle: float = 120.0  # degrees, donor–H···acceptor
    pocket_radius: float = 8.0  # Å: residues this close to the ligand are the pocket
    max_attempts: int = 40  # tries per item before a source is given up
    workers: int = 0  # generator threads; 0 = one per CPU core (at most 4); no effect on items

    def validate(self) -> SpatialConfig:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise PipelineError(
                f"unknown spatial famil{'ies' if len(unknown) > 1 else 'y'}: "
                f"{', '.join(unknown)}; known: {', '.join(FAMILIES)}"
            )
        if not self.families:
            raise PipelineError("no spatial family selected")
        if self.workers < 0:
            raise PipelineError("workers must be ≥ 0 (0 = one per CPU core)")
        if self.count < 0:
            raise PipelineError("count must be ≥ 0")
        if not 2 <= self.n_choices <= 6:
            raise PipelineError("the number of choices must be between 2 and 6")
        if not 1 <= self.angle_step <= 60:
            raise PipelineError("angle step must be between 1 and 60 degrees")
        angles = 2 * len(range(self.angle_step, 180, self.angle_step))  # both directions
        rotating = {"rotation", "composition", "mol_rotation"} & set(self.families)
        if rotating and angles < self.n_choices:
            raise PipelineError(
                f"an angle step of {self.angle_step}° gives only {angles} distinct rotations, "
                f"fewer than {self.n_choices} choices",
                hint="use a smaller --angle-step or fewer --choices",
            )
        if self.closeness not in CLOSENESS_STEPS:
            raise PipelineError(
                f"distractor closeness must be one of {', '.join(CLOSENESS_STEPS)}, "
                f"got {self.closeness!r}"
            )
        if self.layout not in ("panels", "pair"):
            raise PipelineError("layout must be 'panels' or 'pair'")
        if self.micro_format not in ("JPEG", "PNG"):
            raise PipelineError("micrograph image format must be JPEG or PNG")
        if self.view_size < 64 or self.mol_view_size < 128:
            raise PipelineError("views must be at least 64 (micrograph) / 128 (molecule) pixels")
        return self

    def to_params(self) -> dict[str, Any]:
        return {
            "angle_step": self.angle_step,
            "closeness": self.closeness,
            "n_choices": self.n_choices,
            "layout": self.layout,
        }


@dataclass
class RenderedImage:
    data: bytes  # the encoded file
    width: int
    height: int
    role: str  # panels | view1 | view2 | scene
    format: str = "PNG"  # PNG | JPEG


@dataclass
class SpatialItem:
    """One generated MCQ with its images and the parameters that define it."""

    family: str
    question: str
    choices: list[str]
    correct_index: int
    cot: str
    params: dict[str, Any]
    images: list[RenderedImage]
    # provenance copied to the figure rows of the rendered images
    source: dict[str, str] = field(default_factory=dict)

    @property
    def correct_answer(self) -> str:
        return self.choices[self.correct_index]


def family_rng(seed: int, family: str, index: int) -> np.random.Generator:
    """The generator of item `index` of `family`: independent of the other families and of
    how many items are asked for, so the first N items never change when N grows."""
    tag = zlib.crc32(family.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, tag, index]))


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def shuffle_options(
    key: Any, distractors: Sequence[Any], rng: np.random.Generator
) -> tuple[list[Any], int]:
    """Key and distractors in a random order; returns the list and the key's index."""
    options = [key, *distractors]
    order = rng.permutation(len(options))
    shuffled = [options[i] for i in order]
    return shuffled, int(np.flatnonzero(order == 0)[0])


def pick_distractors(
    key: Any,
    tiers: Sequence[Sequence[Any]],
    n: int,
    rng: np.random.Generator,
    ident=lambda x: x,
) -> list[Any] | None:
    """`n` distinct distractors, never equal to `key`: tiers are taken in order (the first
    tier whole and in its given order when it fits; later tiers sampled at random)."""
    chosen: list[Any] = []
    seen = {ident(key)}
    for tier_index, tier in enumerate(tiers):
        candidates = [c for c in tier if ident(c) not in seen]
        unique: list[Any] = []
        for c in candidates:
            if ident(c) not in {ident(u) for u in unique}:
                unique.append(c)
        if tier_index > 0 and unique:
            unique = [unique[i] for i in rng.permutation(len(unique))]
        for c in unique:
            if len(chosen) == n:
                break
            chosen.append(c)
            seen.add(ident(c))
        if len(chosen) == n:
            return chosen
    return None
