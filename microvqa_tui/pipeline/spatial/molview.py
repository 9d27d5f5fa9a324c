"""Molecular view families: two panels of one molecule, same renderer, same colours.

* mol_rotation — view 2 is view 1 turned about one camera axis: the viewing axis
  (clockwise / counter-clockwise as seen), the vertical axis (front moving right / left) or
  the horizontal axis (top tilting toward / away from the viewer);
* mol_translation — the molecule moved in the image plane (8 directions, distances in Å;
  a 5 Å scale bar, labelled 0.5 nm, is drawn in both panels);
* mol_zoom — the magnification changed about the centre of the view.

An item is kept only when every distractor's predicted view differs visibly from the key's
(so symmetric molecules and face-on tilts cannot make two options look alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from microvqa_tui.pipeline.spatial.chem import Molecule
from microvqa_tui.pipeline.spatial.common import (
    CLOSENESS_STEPS,
    GENERATOR_VERSION,
    RenderedImage,
    SpatialConfig,
    SpatialItem,
    family_rng,
    pick_distractors,
    shuffle_options,
)
from microvqa_tui.pipeline.spatial.imaging import compose_panels, encode_png
from microvqa_tui.pipeline.spatial.microtransform import (
    DIRECTIONS,
    ZOOM_FACTORS,
    rotation_magnitudes,
)
from microvqa_tui.pipeline.spatial.molecular import (
    MAX_SCALE,
    StructureLibrary,
    cloud_gap,
    fit_scale,
    rng_pick,
)
from microvqa_tui.pipeline.spatial.render3d import (
    Camera,
    Overlay,
    axis_rotation,
    ligand_layer,
    random_rotation,
    render,
    rounded_rotation,
    scale_bar_box,
)

MOL_DISTANCES = (2.0, 4.0, 6.0, 8.0)  # Å
SCALE_BAR = 5.0  # Å
MIN_GAP = 0.45  # Å: mean displacement between two options' projected atoms
REDRAW_EVERY = 8  # failed attempts before the key itself is drawn again


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class MolTransform:
    """How view 2 differs from view 1: a rotation about a camera axis (signed, right-handed),
    an image-plane move (direction index, Å), or a zoom."""

    axis: str = ""
    angle: int = 0
    direction: int | None = None
    distance: float = 0.0
    zoom_factor: float = 1.0
    zoom_in: bool = True

    @property
    def z(self) -> float:
        return self.zoom_factor if self.zoom_in else 1.0 / self.zoom_factor

    def shift(self) -> np.ndarray:
        """Image-plane move in Å, camera frame (x right, y up)."""
        if self.direction is None:
            return np.zeros(2)
        ang = math.radians(45 * self.direction)
        return self.distance * np.array([math.cos(ang), math.sin(ang)])

    def matrix(self) -> np.ndarray:
        return axis_rotation(self.axis, self.angle) if self.axis else np.eye(3)

    def ident(self) -> tuple:
        return (
            self.axis,
            self.angle,
            self.direction,
            self.distance,
            self.zoom_factor,
            self.zoom_in if self.zoom_factor != 1 else True,
        )

    def describe(self) -> str:
        if self.axis:
            mag = abs(self.angle)
            if self.axis == "z":
                sense = "counter-clockwise" if self.angle > 0 else "clockwise"
                return f"Rotated {mag}° {sense} in the image plane"
            if self.axis == "y":
                side = "right" if self.angle > 0 else "left"
                return f"Rotated {mag}° about the vertical axis, front moving {side}"
            toward = "toward" if self.angle > 0 else "away from"
            return f"Rotated {mag}° about the horizontal axis, top tilting {toward} the viewer"
        if self.direction is not None:
            return f"Moved {DIRECTIONS[self.direction]} by {self.distance:g} Å"
        return f"Zoomed {'in' if self.zoom_in else 'out'} {self.zoom_factor:g}×"

    def to_params(self) -> dict[str, Any]:
        return {
            "axis": self.axis or None,
            "angle_deg": self.angle,
            "direction": DIRECTIONS[self.direction] if self.direction is not None else None,
            "distance_angstrom": self.distance,
            "shift_angstrom": [round(float(v), 6) for v in self.shift()],
            "zoom": round(self.z, 6),
            "zoom_factor": self.zoom_factor,
            "zoom_in": self.zoom_in,
        }


def _rotation_tiers(key: MolTransform, cfg: SpatialConfig) -> list[list[MolTransform]]:
    m = CLOSENESS_STEPS[cfg.closeness]
    step = cfg.angle_step
    mags = rotation_magnitudes(step)
    sign, mag = (1 if key.angle > 0 else -1), abs(key.angle)
    near = [
        MolTransform(key.axis, sign * (mag + d)) for d in (m * step, -m * step) if mag + d in mags
    ]
    near += [MolTransform(a, key.angle) for a in "xyz" if a != key.axis]
    rest = [MolTransform(a, s * x) for a in "xyz" for x in mags for s in (1, -1)]
    return [[MolTransform(key.axis, -key.angle)], near, rest]


def _translation_tiers(key: MolTransform, cfg: SpatialConfig) -> list[list[MolTransform]]:
    m = CLOSENESS_STEPS[cfg.closeness]
    k, d = key.direction or 0, key.distance
    near = [
        MolTransform(direction=(k + m) % 8, distance=d),
        MolTransform(direction=(k - m) % 8, distance=d),
    ]
    near += [
        MolTransform(direction=k, distance=x)
        for x in (d + 2.0 * m, d - 2.0 * m)
        if x in MOL_DISTANCES
    ]
    rest = [MolTransform(direction=j, distance=x) for j in range(8) for x in MOL_DISTANCES]
    return [[MolTransform(direction=(k + 4) % 8, distance=d)], near, rest]


def _zoom_tiers(key: MolTransform, cfg: SpatialConfig) -> list[list[MolTransform]]:
    m = CLOSENESS_STEPS[cfg.closeness]
    i = ZOOM_FACTORS.index(key.zoom_factor)
    near = [
        MolTransform(zoom_factor=ZOOM_FACTORS[j], zoom_in=key.zoom_in)
        for j in (i - m, i + m)
        if 0 <= j < len(ZOOM_FACTORS)
    ]
    rest = [MolTransform(zoom_factor=f, zoom_in=zin) for f in ZOOM_FACTORS for zin in (True, False)]
    return [[MolTransform(zoom_factor=key.zoom_factor, zoom_in=not key.zoom_in)], near, rest]


# --------------------------------------------------------------------------- the family


def generate_mol_view_item(
    family: str, index: int, library: StructureLibrary, cfg: SpatialConfig
) -> SpatialItem | None:
    molecules = library.molecules
    if not molecules:
        return None
    rng = family_rng(cfg.seed, family, index)
    size = cfg.mol_view_size
    for attempt in range(cfg.max_attempts):
        if attempt % REDRAW_EVERY == 0:  # a key no molecule shows clearly is re-drawn
            drawn = _draw_view_key(family, cfg, rng)
            if drawn is None:
                return None
            key, distractors, options, correct = drawn
        ref = rng_pick(rng, molecules)
        mol = ref.molecule
        centre = np.round(mol.coords.mean(axis=0), 4)
        rot1 = rounded_rotation(random_rotation(rng))
        radius = float(np.linalg.norm(mol.coords - centre, axis=1).max()) + 0.5
        if family == "mol_rotation":
            cams = _rotation_cameras(mol, centre, rot1, key, radius, size)
            if not _rotation_distinct(mol, centre, rot1, key, distractors):
                continue
        elif family == "mol_translation":
            cams = _translation_cameras(mol, centre, rot1, key, radius, size, rng)
        else:
            cams = _zoom_cameras(centre, rot1, key, radius, size, rng)
        if cams is None:
            continue
        cam1, cam2 = cams
        layer = ligand_layer(mol.coords, mol.elements, mol.bonds)
        bar = SCALE_BAR if family == "mol_translation" else None
        img1 = render([layer], cam1, Overlay(scale_bar_angstrom=bar))
        img2 = render([layer], cam2, Overlay(scale_bar_angstrom=bar))
        figure, boxes = compose_panels([img1, img2])
        params = {
            "generator": GENERATOR_VERSION,
            "family": family,
            "seed": cfg.seed,
            "index": index,
            "structure": ref.provenance,
            "camera1": cam1.to_params(),
            "camera2": cam2.to_params(),
            "transform": key.to_params(),
            "options": [o.to_params() for o in options],
            "panels": boxes,
            "scale_bar_angstrom": bar,
            "scale_bar_box": scale_bar_box(cam1, bar) if bar else None,
            "config": cfg.to_params(),
            "conventions": "camera frame x right, y up, z toward the viewer; pixel = "
            "(W/2 + offset_x + scale*x_c, H/2 + offset_y - scale*y_c), "
            "x_c = rotation @ (X - centre); angle_deg right-handed about the camera axis",
        }
        return SpatialItem(
            family=family,
            question=VIEW_QUESTIONS[family],
            choices=[o.describe() for o in options],
            correct_index=correct,
            cot=_view_cot(family, key, mol.name),
            params=params,
            images=[RenderedImage(encode_png(figure), *figure.size, "panels", "PNG")],
            source=library.source(
                ref.provenance["file"], ref.key, ref.provenance.get("complex") or ref.key
            ),
        )
    return None


def _draw_view_key(family: str, cfg: SpatialConfig, rng: np.random.Generator):
    if family == "mol_rotation":
        mags = rotation_magnitudes(cfg.angle_step)
        key = MolTransform(
            axis="xyz"[int(rng.integers(3))],
            angle=int(rng_pick(rng, mags)) * (1 if rng.random() < 0.5 else -1),
        )
        tiers = _rotation_tiers(key, cfg)
    elif family == "mol_translation":
        key = MolTransform(
            direction=int(rng.integers(8)), distance=rng_pick(rng, list(MOL_DISTANCES))
        )
        tiers = _translation_tiers(key, cfg)
    else:
        key = MolTransform(
            zoom_factor=rng_pick(rng, list(ZOOM_FACTORS)), zoom_in=bool(rng.random() < 0.5)
        )
        tiers = _zoom_tiers(key, cfg)
    distractors = pick_distractors(key, tiers, cfg.n_choices - 1, rng, ident=MolTransform.ident)
    if distractors is None:
        return None
    options, correct = shuffle_options(key, distractors, rng)
    return key, distractors, options, correct


def _rotation_cameras(mol, centre, rot1, key, radius, size):
    scale = round(fit_scale(radius, size, 12), 4)
    rot2 = rounded_rotation(key.matrix() @ rot1)
    return (Camera(rot1, centre, scale, (size, size)), Camera(rot2, centre, scale, (size, size)))


def _rotation_distinct(mol: Molecule, centre, rot1, key: MolTransform, distractors) -> bool:
    cam = (mol.coords - centre) @ rot1.T
    view1 = cam[:, :2]
    view2 = cam @ key.matrix().T
    if cloud_gap(view1, view2[:, :2], mol.elements) < MIN_GAP:
        return False
    return all(
        cloud_gap(view2[:, :2], (cam @ d.matrix().T)[:, :2], mol.elements) >= MIN_GAP
        for d in distractors
    )


def _translation_cameras(mol, centre, rot1, key, radius, size, rng):
    """Same rotation and scale; the molecule's pixel position moves by the key's shift. The
    starting position is random, so where the molecule sits in view 1 does not tell the way."""
    cam = (mol.coords - centre) @ rot1.T
    scale = min(MAX_SCALE, (size - 56) / (2 * radius + max(MOL_DISTANCES)))
    scale = round(scale, 4)
    shift_px = key.shift() * scale * np.array([1.0, -1.0])
    xs, ys = cam[:, 0] * scale, -cam[:, 1] * scale
    pad = 0.5 * scale + 8
    lo = np.array([pad - xs.min(), pad - ys.min()]) - size / 2
    hi = np.array([size - pad - xs.max(), size - 36 - ys.max()]) - size / 2  # bar at the bottom
    lo2, hi2 = lo - shift_px, hi - shift_px
    lo, hi = np.maximum(lo, lo2), np.minimum(hi, hi2)
    if (hi <= lo).any():
        return None
    off1 = np.round(rng.uniform(lo, hi), 3)
    off2 = np.round(off1 + shift_px, 3)
    return (
        Camera(rot1, centre, scale, (size, size), (float(off1[0]), float(off1[1]))),
        Camera(rot1, centre, scale, (size, size), (float(off2[0]), float(off2[1]))),
    )


def _zoom_cameras(centre, rot1, key, radius, size, rng):
    big = fit_scale(radius, size, 10)
    scale1 = big / max(1.0, key.z) * float(rng.uniform(0.85, 1.0))
    scale1 = round(scale1, 4)
    scale2 = round(scale1 * key.z, 6)
    return (Camera(rot1, centre, scale1, (size, size)), Camera(rot1, centre, scale2, (size, size)))


VIEW_QUESTIONS = {
    "mol_rotation": (
        "Views 1 and 2 show the same molecule (ball-and-stick, CPK colours) before and after "
        "a rotation about one axis through its centre: the viewing axis, the vertical axis or "
        "the horizontal axis of the image. Which rotation maps view 1 onto view 2?"
    ),
    "mol_translation": (
        "Views 1 and 2 show the same molecule in the same orientation and at the same scale "
        "(the scale bar is 0.5 nm = 5 Å), before and after a move within the image plane. How did the "
        "molecule move from view 1 to view 2?"
    ),
    "mol_zoom": (
        "View 2 shows the same molecule as view 1, in the same orientation, rendered at a "
        "different magnification about the centre of the view. Which change of "
        "magnification maps view 1 onto view 2?"
    ),
}


def _view_cot(family: str, key: MolTransform, name: str) -> str:
    if family == "mol_rotation":
        if key.axis == "z":
            body = (
                "The molecule keeps its outline but every atom turns about the centre of "
                "the view; no atom changes depth."
            )
        elif key.axis == "y":
            body = (
                "Atoms on the vertical line through the centre stay put while the others "
                "swing sideways and change depth: atoms in front move to the "
                f"{'right' if key.angle > 0 else 'left'}."
            )
        else:
            body = (
                "Atoms on the horizontal line through the centre stay put while the others "
                "swing up or down and change depth: the top comes "
                f"{'toward' if key.angle > 0 else 'away from'} the viewer."
            )
        return f"{name}: {body} Answer: {key.describe()}."
    if family == "mol_translation":
        return (
            f"{name} keeps its orientation and size; comparing its position with the "
            f"5 Å scale bar, it moved {DIRECTIONS[key.direction or 0]} by about "
            f"{key.distance:g} Å. Answer: {key.describe()}."
        )
    return (
        f"{name} keeps its orientation; bond lengths in view 2 are {key.zoom_factor:g} "
        f"times {'longer' if key.zoom_in else 'shorter'} than in view 1. "
        f"Answer: {key.describe()}."
    )
