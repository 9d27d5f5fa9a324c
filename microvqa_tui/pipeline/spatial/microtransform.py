"""The transformations of the micrograph families, and the keys and distractors drawn from
them (conventions: `micrograph`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from microvqa_tui.pipeline.spatial.common import (
    CLOSENESS_STEPS,
    SpatialConfig,
    pick_distractors,
)

DIRECTIONS = (
    "right",
    "up and to the right",
    "up",
    "up and to the left",
    "left",
    "down and to the left",
    "down",
    "down and to the right",
)
DISTANCES = (0.1, 0.2, 0.3, 0.4)  # fractions of the view-1 width
ZOOM_FACTORS = (1.25, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class MicroTransform:
    """A transformation from view 1 to view 2; neutral parts are 0 / None / 1."""

    theta: int = 0  # content rotation, degrees clockwise, in (-180, 180)
    direction: int | None = None  # index in DIRECTIONS (45° steps counter-clockwise from right)
    distance: float = 0.0  # fraction of the view-1 width
    zoom_factor: float = 1.0  # ≥ 1
    zoom_in: bool = True

    @property
    def z(self) -> float:
        """Magnification from view 1 to view 2 (> 1: zoomed in)."""
        return self.zoom_factor if self.zoom_in else 1.0 / self.zoom_factor

    @property
    def t(self) -> np.ndarray:
        """Field move in view-1 widths, y down."""
        if self.direction is None:
            return np.zeros(2)
        ang = math.radians(45 * self.direction)
        return self.distance * np.array([math.cos(ang), -math.sin(ang)])

    def ident(self) -> tuple:
        return (
            self.theta,
            self.direction,
            round(self.distance, 4),
            self.zoom_factor,
            self.zoom_in if self.zoom_factor != 1 else True,
        )

    def parts(self) -> list[str]:
        out: list[str] = []
        if self.direction is not None:
            out.append(
                f"the field of view moved {DIRECTIONS[self.direction]} by "
                f"{round(self.distance * 100)}% of the field width"
            )
        if self.theta:
            sense = "clockwise" if self.theta > 0 else "counter-clockwise"
            out.append(f"rotated {abs(self.theta)}° {sense}")
        if self.zoom_factor != 1:
            out.append(f"zoomed {'in' if self.zoom_in else 'out'} {factor_text(self.zoom_factor)}×")
        return out

    def describe(self) -> str:
        parts = self.parts()
        if self.direction is not None and len(parts) > 1:
            text = parts[0] + ", then the image was " + " and ".join(parts[1:])
        else:
            text = " and ".join(parts)
        return text[0].upper() + text[1:]

    def to_params(self) -> dict[str, Any]:
        tx, ty = self.t
        return {
            "rotation_cw_deg": self.theta,
            "direction": DIRECTIONS[self.direction] if self.direction is not None else None,
            "distance": self.distance,
            "shift": [round(float(tx), 6), round(float(ty), 6)],
            "zoom": round(self.z, 6),
            "zoom_factor": self.zoom_factor,
            "zoom_in": self.zoom_in,
        }


def factor_text(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- keys and distractors


def rotation_magnitudes(step: int) -> list[int]:
    return [k * step for k in range(1, 360) if k * step < 180]


def _rotation_tiers(theta: int, step: int, m: int) -> list[list[int]]:
    sign, mag = (1 if theta > 0 else -1), abs(theta)
    mags = rotation_magnitudes(step)
    near = [s * (mag + d) for s in (sign, -sign) for d in (m * step, -m * step)]
    near = [a for a in near if abs(a) in mags]
    rest = [s * x for x in mags for s in (1, -1)]
    rest.sort(key=lambda a: (abs(abs(a) - mag), a))
    return [[-theta], near, rest]


def _translation_tiers(direction: int, distance: float, m: int) -> list[list[tuple[int, float]]]:
    near = [((direction + m) % 8, distance), ((direction - m) % 8, distance)]
    for d in (distance + 0.1 * m, distance - 0.1 * m):
        d = round(d, 4)
        if d in DISTANCES:
            near.append((direction, d))
    rest = [(k, d) for k in range(8) for d in DISTANCES]
    return [[((direction + 4) % 8, distance)], near, rest]


def _zoom_tiers(factor: float, zoom_in: bool, m: int) -> list[list[tuple[float, bool]]]:
    i = ZOOM_FACTORS.index(factor)
    near = [(ZOOM_FACTORS[j], zoom_in) for j in (i - m, i + m) if 0 <= j < len(ZOOM_FACTORS)]
    rest = [(f, zin) for f in ZOOM_FACTORS for zin in (True, False)]
    return [[(factor, not zoom_in)], near, rest]


def _component_tiers(kind: str, key: MicroTransform, cfg: SpatialConfig) -> list[list[dict]]:
    """Alternatives of one component of `key`, as field overrides, in tiers."""
    m = CLOSENESS_STEPS[cfg.closeness]
    if kind == "rotation":
        return [
            [{"theta": a} for a in tier] for tier in _rotation_tiers(key.theta, cfg.angle_step, m)
        ]
    if kind == "translation":
        return [
            [{"direction": k, "distance": d} for k, d in tier]
            for tier in _translation_tiers(key.direction or 0, key.distance, m)
        ]
    return [
        [{"zoom_factor": f, "zoom_in": zin} for f, zin in tier]
        for tier in _zoom_tiers(key.zoom_factor, key.zoom_in, m)
    ]


def sample_key(
    kinds: tuple[str, ...], cfg: SpatialConfig, rng: np.random.Generator
) -> MicroTransform:
    fields: dict[str, Any] = {}
    for kind in kinds:
        if kind == "rotation":
            mags = rotation_magnitudes(cfg.angle_step)
            fields["theta"] = int(mags[rng.integers(len(mags))]) * (1 if rng.random() < 0.5 else -1)
        elif kind == "translation":
            fields["direction"] = int(rng.integers(8))
            fields["distance"] = DISTANCES[rng.integers(len(DISTANCES))]
        else:
            fields["zoom_factor"] = ZOOM_FACTORS[rng.integers(len(ZOOM_FACTORS))]
            fields["zoom_in"] = bool(rng.random() < 0.5)
    return MicroTransform(**fields)


def make_distractors(
    kinds: tuple[str, ...], key: MicroTransform, cfg: SpatialConfig, rng: np.random.Generator
) -> list[MicroTransform] | None:
    n = cfg.n_choices - 1
    if len(kinds) == 1:
        tiers = [[replace(key, **o) for o in tier] for tier in _component_tiers(kinds[0], key, cfg)]
    else:
        a_tiers = _component_tiers(kinds[0], key, cfg)
        b_tiers = _component_tiers(kinds[1], key, cfg)
        flip_a, flip_b = a_tiers[0][0], b_tiers[0][0]
        first = [replace(key, **flip_a), replace(key, **flip_b)]
        second = [replace(key, **flip_a, **flip_b)]
        second += [replace(key, **o) for o in a_tiers[1] + b_tiers[1]]
        rest = [replace(key, **x, **y) for x in a_tiers[2] for y in b_tiers[2]]
        tiers = [first, second, rest]
    return pick_distractors(key, tiers, n, rng, ident=MicroTransform.ident)
