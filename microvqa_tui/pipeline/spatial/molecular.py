"""Molecular structure tasks: views of molecules and of ligands in their pockets.

View families (two panels of one molecule, same renderer, same colours):

* mol_rotation — view 2 is view 1 turned about one camera axis: the viewing axis
  (clockwise / counter-clockwise as seen), the vertical axis (front moving right / left) or
  the horizontal axis (top tilting toward / away from the viewer);
* mol_translation — the molecule moved in the image plane (8 directions, distances in Å;
  a 5 Å scale bar, labelled 0.5 nm, is drawn in both panels);
* mol_zoom — the magnification changed about the centre of the view.

Interaction families (one labelled image of a ligand and some pocket residues):

* contacts — which residue contacts the ligand (or which does not);
* interaction_site — where, relative to the ligand's centre in this view, a residue's
  contacts sit (one of four quadrants);
* hbond — which residue forms a hydrogen bond with the ligand.

Definitions of contacts and hydrogen bonds: `chem`. A view item is kept only when every
distractor's predicted view differs visibly from the key's (so symmetric molecules and
face-on tilts cannot make two options look alike); interaction keys and distractors keep a
margin from every threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.pipeline.spatial.chem import (
    Molecule,
    hydrogen_bonds,
    near_hbond_residues,
    residue_min_distances,
)
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
from microvqa_tui.pipeline.spatial.micrograph import DIRECTIONS, ZOOM_FACTORS, rotation_magnitudes
from microvqa_tui.pipeline.spatial.render3d import (
    Camera,
    Label,
    Overlay,
    axis_rotation,
    ligand_layer,
    random_rotation,
    render,
    residue_layer,
    rounded_rotation,
    scale_bar_box,
)
from microvqa_tui.pipeline.spatial.structures import (
    Complex,
    StructureSet,
    bundled_structures,
    file_sha256,
    load_complex,
    load_molecules,
)

MOL_DISTANCES = (2.0, 4.0, 6.0, 8.0)  # Å
SCALE_BAR = 5.0  # Å
MIN_GAP = 0.45  # Å: mean displacement between two options' projected atoms
REDRAW_EVERY = 8  # failed attempts before the key itself is drawn again
MAX_SCALE = 45.0  # pixels per Å
QUADRANTS = ("upper left", "upper right", "lower left", "lower right")
KEY_MARGIN = 0.2  # Å inside the contact cut-off for a "contacts" key
NONCONTACT_MARGIN = 0.5  # Å beyond the cut-off for a "does not contact" residue
HB_KEY_DISTANCE_MARGIN = 0.05
HB_KEY_ANGLE_MARGIN = 2.0


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


# --------------------------------------------------------------------------- geometry helpers


def cloud_gap(a: np.ndarray, b: np.ndarray, elements: list[str]) -> float:
    """How far apart two projections of the same atoms look, ignoring atom identity within an
    element (so a symmetric molecule's equivalent views count as equal): the larger of the
    two mean nearest-same-element distances (Å)."""
    worst = 0.0
    elements_arr = np.array(elements)
    totals = [0.0, 0.0]
    for e in set(elements):
        idx = elements_arr == e
        pa, pb = a[idx], b[idx]
        d = np.linalg.norm(pa[:, None] - pb[None], axis=-1)
        totals[0] += d.min(axis=1).sum()
        totals[1] += d.min(axis=0).sum()
    worst = max(totals) / len(elements)
    return float(worst)


def face_on_rotation(points: np.ndarray) -> np.ndarray:
    """Rows = principal axes (largest variance first): the flattest view of `points`."""
    centred = points - points.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    rot = vecs[:, ::-1].T
    if np.linalg.det(rot) < 0:
        rot[2] *= -1
    return rot


def _fit_scale(radius: float, size: int, margin: float) -> float:
    return min(MAX_SCALE, (size / 2 - margin) / max(radius, 1e-3))


def _polar_visible(elements: list[str], bonds: list[tuple[int, int]]) -> np.ndarray:
    """Heavy atoms and the hydrogens on N/O."""
    visible = np.array([e != "H" for e in elements])
    for i, j in bonds:
        for h, x in ((i, j), (j, i)):
            if elements[h] == "H" and elements[x] in ("N", "O"):
                visible[h] = True
    return visible


# --------------------------------------------------------------------------- sources


@dataclass
class MoleculeRef:
    key: str  # stable identity for params / article ids
    molecule: Molecule
    provenance: dict[str, Any]


class StructureLibrary:
    """Lazily loaded molecules and complexes of a structures folder."""

    def __init__(self, structures: StructureSet, pocket_radius: float) -> None:
        self.set = structures
        self.pocket_radius = pocket_radius
        self.bundled = Path(structures.root).resolve() == bundled_structures().resolve()

    @cached_property
    def complexes(self) -> list[Complex]:
        out = []
        for files in self.set.complexes:
            try:
                out.append(load_complex(files, self.set.root, self.pocket_radius))
            except Exception:  # an unreadable complex is skipped, not fatal
                continue
        return out

    @cached_property
    def molecules(self) -> list[MoleculeRef]:
        refs: list[MoleculeRef] = []
        for path in self.set.molecules:
            sha = file_sha256(path)
            for mol in load_molecules(path, self.set.root):
                refs.append(
                    MoleculeRef(
                        key=f"{mol.source}#{mol.record}",
                        molecule=mol,
                        provenance={
                            "kind": "molecule",
                            "file": mol.source,
                            "record": mol.record,
                            "name": mol.name,
                            "sha256": sha,
                            "hydrogens": mol.hydrogens,
                        },
                    )
                )
        for cx in self.complexes:
            refs.append(
                MoleculeRef(
                    key=f"{cx.ligand_file}#0",
                    molecule=cx.ligand,
                    provenance={
                        "kind": "ligand",
                        "complex": cx.id,
                        "file": cx.ligand_file,
                        "record": 0,
                        "name": cx.ligand.name,
                        "sha256": cx.ligand_sha256,
                        "hydrogens": cx.ligand.hydrogens,
                    },
                )
            )
        return refs

    def licence(self) -> tuple[str, str]:
        if self.bundled:
            return "CC0-1.0", "microvqa_tui example structures (assets/spatial; synthetic pockets)"
        return "", ""


# --------------------------------------------------------------------------- view families


def _mol_rng_pick(rng: np.random.Generator, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


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
        ref = _mol_rng_pick(rng, molecules)
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
        licence, attribution = library.licence()
        return SpatialItem(
            family=family,
            question=VIEW_QUESTIONS[family],
            choices=[o.describe() for o in options],
            correct_index=correct,
            cot=_view_cot(family, key, mol.name),
            params=params,
            images=[RenderedImage(encode_png(figure), *figure.size, "panels", "PNG")],
            source={
                "source": f"structure:{ref.provenance['file']}",
                "original_id": ref.key,
                "article_id": f"spatial:{ref.provenance.get('complex') or ref.key}",
                "license": licence,
                "attribution": attribution,
            },
        )
    return None


def _draw_view_key(family: str, cfg: SpatialConfig, rng: np.random.Generator):
    if family == "mol_rotation":
        mags = rotation_magnitudes(cfg.angle_step)
        key = MolTransform(
            axis="xyz"[int(rng.integers(3))],
            angle=int(_mol_rng_pick(rng, mags)) * (1 if rng.random() < 0.5 else -1),
        )
        tiers = _rotation_tiers(key, cfg)
    elif family == "mol_translation":
        key = MolTransform(
            direction=int(rng.integers(8)), distance=_mol_rng_pick(rng, list(MOL_DISTANCES))
        )
        tiers = _translation_tiers(key, cfg)
    else:
        key = MolTransform(
            zoom_factor=_mol_rng_pick(rng, list(ZOOM_FACTORS)), zoom_in=bool(rng.random() < 0.5)
        )
        tiers = _zoom_tiers(key, cfg)
    distractors = pick_distractors(key, tiers, cfg.n_choices - 1, rng, ident=MolTransform.ident)
    if distractors is None:
        return None
    options, correct = shuffle_options(key, distractors, rng)
    return key, distractors, options, correct


def _rotation_cameras(mol, centre, rot1, key, radius, size):
    scale = round(_fit_scale(radius, size, 12), 4)
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
    big = _fit_scale(radius, size, 10)
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


# --------------------------------------------------------------------------- interaction families


INTERACTION_INTRO = (
    "The image shows a ligand (ball-and-stick, dark grey carbons) and labelled residues of "
    "its binding pocket (thin sticks, light grey carbons; polar hydrogens in white). "
)


@dataclass
class ResidueFacts:
    index: int
    label: str
    min_distance: float
    hbonds: list
    near_hbond: bool


def _complex_facts(cx: Complex, cfg: SpatialConfig) -> tuple[list[ResidueFacts], str]:
    dmin = residue_min_distances(cx.pocket, cx.ligand)
    bonds, mode = hydrogen_bonds(cx.pocket, cx.ligand, cfg.hbond_distance, cfg.hbond_angle)
    near = near_hbond_residues(cx.pocket, cx.ligand, cfg.hbond_distance, cfg.hbond_angle)
    facts = [
        ResidueFacts(
            i, cx.pocket.label(i), float(dmin[i]), [b for b in bonds if b.residue == i], i in near
        )
        for i in range(len(cx.pocket.residues))
    ]
    return facts, mode


def _interaction_camera(cx: Complex, residues: list[int], rng, size: int) -> Camera:
    lig = cx.ligand.coords[cx.ligand.heavy]
    rot = face_on_rotation(lig)
    rot = axis_rotation("z", float(rng.uniform(0, 360))) @ rot
    if rng.random() < 0.5:
        rot = axis_rotation("x", 180.0) @ rot
    rot = (
        axis_rotation("x", float(rng.uniform(-20, 20)))
        @ axis_rotation("y", float(rng.uniform(-20, 20)))
        @ rot
    )
    rot = rounded_rotation(rot)
    atoms = [cx.ligand.coords] + [cx.pocket.coords[cx.pocket.residues[r].atoms] for r in residues]
    pts = np.vstack(atoms)
    centre = np.round(pts.mean(axis=0), 4)
    radius = float(np.linalg.norm(pts - centre, axis=1).max()) + 0.6
    scale = round(_fit_scale(radius, size, 26), 4)
    return Camera(rot, centre, scale, (size, size))


def _render_interaction(cx: Complex, residues: list[int], camera: Camera):
    lig = cx.ligand
    layers = [
        ligand_layer(lig.coords, lig.elements, lig.bonds, _polar_visible(lig.elements, lig.bonds))
    ]
    sub = cx.pocket.subset(residues)
    layers.insert(
        0,
        residue_layer(sub.coords, sub.elements, sub.bonds, _polar_visible(sub.elements, sub.bonds)),
    )
    lig_centre = camera.project(lig.coords[lig.heavy]).mean(axis=0)[:2]
    labels = []
    label_xy = {}
    for r in residues:
        res_atoms = cx.pocket.residues[r].atoms
        heavy = [a for a in res_atoms if cx.pocket.elements[a] != "H"]
        p = camera.project(cx.pocket.coords[heavy]).mean(axis=0)[:2]
        away = p - lig_centre
        norm = float(np.linalg.norm(away))
        xy = p + (away / norm * 16 if norm > 1e-6 else np.array([0.0, -16.0]))
        labels.append(Label(cx.pocket.label(r), (float(xy[0]), float(xy[1]))))
        label_xy[cx.pocket.label(r)] = [round(float(xy[0]), 1), round(float(xy[1]), 1)]
    image = render(layers, camera, Overlay(labels=labels))
    return image, label_xy


def generate_interaction_item(
    family: str, index: int, library: StructureLibrary, cfg: SpatialConfig
) -> SpatialItem | None:
    complexes = library.complexes
    if not complexes:
        return None
    rng = family_rng(cfg.seed, family, index)
    size = round(cfg.mol_view_size * 1.25)
    for _attempt in range(cfg.max_attempts):
        cx = _mol_rng_pick(rng, complexes)
        facts, mode = _complex_facts(cx, cfg)
        built = _INTERACTION_BUILDERS[family](cx, facts, rng, cfg)
        if built is None:
            continue
        key_label, option_labels, shown, question, cot, extra = built
        camera = _interaction_camera(cx, shown, rng, size)
        if family == "interaction_site":
            site = _quadrant(cx, facts, extra["residue"], camera, cfg)
            if site is None:
                continue
            key_label, extra = site[0], {**extra, **site[1]}
            others = [q for q in QUADRANTS if q != key_label]
            shuffled = [others[i] for i in rng.permutation(len(others))]
            option_labels = [key_label, *shuffled[: cfg.n_choices - 1]]
        options, correct = shuffle_options(option_labels[0], option_labels[1:], rng)
        image, label_xy = _render_interaction(cx, shown, camera)
        by_label = {f.label: f for f in facts}
        params = {
            "generator": GENERATOR_VERSION,
            "family": family,
            "seed": cfg.seed,
            "index": index,
            "structure": {
                "kind": "complex",
                "complex": cx.id,
                "protein_file": cx.protein_file,
                "ligand_file": cx.ligand_file,
                "protein_sha256": cx.protein_sha256,
                "ligand_sha256": cx.ligand_sha256,
                "ligand_hydrogens": cx.ligand.hydrogens,
            },
            "criteria": {
                "contact_cutoff": cfg.contact_cutoff,
                "hbond_distance": cfg.hbond_distance,
                "hbond_angle": cfg.hbond_angle,
                "hbond_mode": mode,
            },
            "camera": camera.to_params(),
            "shown_residues": [_residue_params(cx, r) for r in shown],
            "label_positions": label_xy,
            "options": options,
            "answer": options[correct],
            "facts": {
                lab: {
                    "min_heavy_distance": round(by_label[lab].min_distance, 3),
                    "hbonds": [b.to_params() for b in by_label[lab].hbonds],
                }
                for lab in (cx.pocket.label(r) for r in shown)
            },
            **extra,
            "config": cfg.to_params(),
        }
        licence, attribution = library.licence()
        return SpatialItem(
            family=family,
            question=question,
            choices=list(options),
            correct_index=correct,
            cot=cot if family != "interaction_site" else extra_cot(extra, key_label),
            params=params,
            images=[RenderedImage(encode_png(image), *image.size, "scene", "PNG")],
            source={
                "source": f"structure:{cx.protein_file}",
                "original_id": cx.id,
                "article_id": f"spatial:{cx.id}",
                "license": licence,
                "attribution": attribution,
            },
        )
    return None


def _residue_params(cx: Complex, r: int) -> dict[str, Any]:
    res = cx.pocket.residues[r]
    return {
        "label": cx.pocket.label(r),
        "chain": res.chain,
        "number": res.number,
        "icode": res.icode,
        "name": res.name,
    }


def _contacts(cx, facts: list[ResidueFacts], rng, cfg: SpatialConfig):
    cut = cfg.contact_cutoff
    n = cfg.n_choices
    touching = [f for f in facts if f.min_distance <= cut - KEY_MARGIN]
    apart = [f for f in facts if f.min_distance >= cut + NONCONTACT_MARGIN]
    variants = []
    if touching and len(apart) >= n - 1:
        variants.append("contact")
    if apart and len(touching) >= n - 1:
        variants.append("no_contact")
    if not variants:
        return None
    variant = _mol_rng_pick(rng, variants)
    keys, pool = (touching, apart) if variant == "contact" else (apart, touching)
    key = _mol_rng_pick(rng, keys)
    others = [pool[i] for i in rng.permutation(len(pool))[: n - 1]]
    shown = sorted([key.index] + [o.index for o in others])
    if variant == "contact":
        question = (
            INTERACTION_INTRO + "Which residue is in direct contact with the ligand, "
            f"i.e. has a heavy atom within {cut:g} Å of a ligand heavy atom?"
        )
        cot = (
            f"{key.label} comes within {key.min_distance:.1f} Å of the ligand (heavy atoms); "
            "the other residues stay at least "
            f"{min(o.min_distance for o in others):.1f} Å away. Answer: {key.label}."
        )
    else:
        question = (
            INTERACTION_INTRO + "Which residue does NOT contact the ligand, i.e. has no "
            f"heavy atom within {cut:g} Å of a ligand heavy atom?"
        )
        cot = (
            f"{key.label} stays {key.min_distance:.1f} Å from the nearest ligand heavy atom, "
            f"beyond {cut:g} Å; each other residue comes within "
            f"{max(o.min_distance for o in others):.1f} Å. Answer: {key.label}."
        )
    return (
        key.label,
        [key.label] + [o.label for o in others],
        shown,
        question,
        cot,
        {"variant": variant},
    )


def _hbond(cx, facts: list[ResidueFacts], rng, cfg: SpatialConfig):
    n = cfg.n_choices
    dmax = cfg.hbond_distance - HB_KEY_DISTANCE_MARGIN
    amin = cfg.hbond_angle + HB_KEY_ANGLE_MARGIN
    keys = [f for f in facts if any(b.distance <= dmax and b.angle >= amin for b in f.hbonds)]
    pool = [f for f in facts if not f.near_hbond]
    if not keys or len(pool) < n - 1:
        return None
    key = _mol_rng_pick(rng, keys)
    # hard distractors first: residues that touch the ligand without a hydrogen bond
    touching = [f for f in pool if f.min_distance <= cfg.contact_cutoff]
    rest = [f for f in pool if f.min_distance > cfg.contact_cutoff]
    ordered = [touching[i] for i in rng.permutation(len(touching))] + [
        rest[i] for i in rng.permutation(len(rest))
    ]
    others = ordered[: n - 1]
    shown = sorted([key.index] + [o.index for o in others])
    b = min(key.hbonds, key=lambda x: x.distance)
    donor = "the residue" if b.donor_side == "protein" else "the ligand"
    question = (
        INTERACTION_INTRO + "Which residue forms a hydrogen bond with the ligand "
        f"(donor–acceptor distance ≤ {cfg.hbond_distance:g} Å, donor–H···acceptor angle "
        f"≥ {cfg.hbond_angle:g}°)?"
    )
    cot = (
        f"{key.label}: {donor} donates a hydrogen across {b.distance:.2f} Å at "
        f"{b.angle:.0f}°. The other residues have no donor–acceptor pair meeting both "
        f"criteria. Answer: {key.label}."
    )
    return key.label, [key.label] + [o.label for o in others], shown, question, cot, {}


def _site(cx, facts: list[ResidueFacts], rng, cfg: SpatialConfig):
    touching = [f for f in facts if f.min_distance <= cfg.contact_cutoff - KEY_MARGIN]
    if not touching:
        return None
    key = _mol_rng_pick(rng, touching)
    others = [f for f in facts if f.index != key.index]
    extra = [others[i] for i in rng.permutation(len(others))[:2]]
    shown = sorted([key.index] + [o.index for o in extra])
    question = (
        INTERACTION_INTRO + f"In this view, where does {key.label} contact the ligand "
        f"(heavy atoms within {cfg.contact_cutoff:g} Å), relative to the centre of the "
        "ligand?"
    )
    return "", [], shown, question, "", {"residue": key.index, "residue_label": key.label}


def _quadrant(cx: Complex, facts, residue: int, camera: Camera, cfg: SpatialConfig):
    """The image quadrant (about the ligand's projected heavy-atom centre) holding every
    contact of `residue`, or None when they straddle a boundary."""
    lig = cx.ligand
    res_atoms = [a for a in cx.pocket.residues[residue].atoms if cx.pocket.elements[a] != "H"]
    lig_heavy = np.flatnonzero(lig.heavy)
    d = np.linalg.norm(cx.pocket.coords[res_atoms][:, None] - lig.coords[lig_heavy][None], axis=-1)
    ii, jj = np.nonzero(d <= cfg.contact_cutoff)
    if not len(ii):
        return None
    mids = (cx.pocket.coords[np.array(res_atoms)[ii]] + lig.coords[lig_heavy[jj]]) / 2
    centre = camera.project(lig.coords[lig_heavy]).mean(axis=0)[:2]
    proj = camera.project(mids)[:, :2] - centre
    radius = float(
        np.linalg.norm(camera.project(lig.coords[lig_heavy])[:, :2] - centre, axis=1).max()
    )
    margin = max(6.0, 0.08 * radius)
    if (np.abs(proj) < margin).any():
        return None
    right, down = proj[:, 0] > 0, proj[:, 1] > 0
    if len(set(right.tolist())) > 1 or len(set(down.tolist())) > 1:
        return None
    quadrant = ("lower " if down[0] else "upper ") + ("right" if right[0] else "left")
    return quadrant, {
        "ligand_centre_px": [round(float(v), 2) for v in centre],
        "contact_midpoints_px": [
            [round(float(x + centre[0]), 2), round(float(y + centre[1]), 2)] for x, y in proj
        ],
        "quadrant_margin_px": round(margin, 2),
    }


def extra_cot(extra: dict, quadrant: str) -> str:
    vertical, horizontal = quadrant.split()
    return (
        f"Every contact between {extra['residue_label']} and the ligand lies "
        f"{'above' if vertical == 'upper' else 'below'} and to the {horizontal} of the "
        f"ligand's centre in this view. Answer: {quadrant}."
    )


_INTERACTION_BUILDERS = {"contacts": _contacts, "hbond": _hbond, "interaction_site": _site}
