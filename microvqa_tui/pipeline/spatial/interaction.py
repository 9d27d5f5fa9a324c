"""Interaction families: one labelled image of a ligand and some pocket residues.

* contacts — which residue contacts the ligand (or which does not);
* interaction_site — where, relative to the ligand's centre in this view, a residue's
  contacts sit (one of four quadrants);
* hbond — which residue forms a hydrogen bond with the ligand.

Definitions of contacts and hydrogen bonds: `chem`. Keys and distractors keep a margin from
every threshold, so rounding in a drawing cannot flip an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from microvqa_tui.pipeline.spatial.chem import (
    hydrogen_bonds,
    near_hbond_residues,
    residue_min_distances,
)
from microvqa_tui.pipeline.spatial.common import (
    GENERATOR_VERSION,
    RenderedImage,
    SpatialConfig,
    SpatialItem,
    family_rng,
    shuffle_options,
)
from microvqa_tui.pipeline.spatial.imaging import encode_png
from microvqa_tui.pipeline.spatial.molecular import (
    StructureLibrary,
    face_on_rotation,
    fit_scale,
    polar_visible,
    rng_pick,
)
from microvqa_tui.pipeline.spatial.render3d import (
    Camera,
    Label,
    Overlay,
    axis_rotation,
    ligand_layer,
    render,
    residue_layer,
    rounded_rotation,
)
from microvqa_tui.pipeline.spatial.structures import Complex

QUADRANTS = ("upper left", "upper right", "lower left", "lower right")
KEY_MARGIN = 0.2  # Å inside the contact cut-off for a "contacts" key
NONCONTACT_MARGIN = 0.5  # Å beyond the cut-off for a "does not contact" residue
HB_KEY_DISTANCE_MARGIN = 0.05
HB_KEY_ANGLE_MARGIN = 2.0


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
    scale = round(fit_scale(radius, size, 26), 4)
    return Camera(rot, centre, scale, (size, size))


def _render_interaction(cx: Complex, residues: list[int], camera: Camera):
    lig = cx.ligand
    layers = [
        ligand_layer(lig.coords, lig.elements, lig.bonds, polar_visible(lig.elements, lig.bonds))
    ]
    sub = cx.pocket.subset(residues)
    layers.insert(
        0,
        residue_layer(sub.coords, sub.elements, sub.bonds, polar_visible(sub.elements, sub.bonds)),
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
    if not library.complexes:
        return None
    rng = family_rng(cfg.seed, family, index)
    size = round(cfg.mol_view_size * 1.25)
    for _attempt in range(cfg.max_attempts):
        cx = rng_pick(rng, library.complexes)
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
        scene = _Scene(cx, facts, mode, shown, camera, label_xy)
        params = _interaction_params(family, index, cfg, scene, options, correct, extra)
        return SpatialItem(
            family=family,
            question=question,
            choices=list(options),
            correct_index=correct,
            cot=cot if family != "interaction_site" else extra_cot(extra, key_label),
            params=params,
            images=[RenderedImage(encode_png(image), *image.size, "scene", "PNG")],
            source=library.source(cx.protein_file, cx.id, cx.id),
        )
    return None


@dataclass
class _Scene:
    """One drawn interaction image: the complex, its residue facts and what is shown where."""

    cx: Complex
    facts: list[ResidueFacts]
    mode: str  # how hydrogen bonds were found (explicit hydrogens or geometry)
    shown: list[int]
    camera: Camera
    label_xy: dict[str, list[float]]


def _interaction_params(
    family: str,
    index: int,
    cfg: SpatialConfig,
    scene: _Scene,
    options: list[str],
    correct: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to redraw and re-check the item (stored with it)."""
    by_label = {f.label: f for f in scene.facts}
    cx, shown = scene.cx, scene.shown
    return {
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
            "hbond_mode": scene.mode,
        },
        "camera": scene.camera.to_params(),
        "shown_residues": [_residue_params(cx, r) for r in shown],
        "label_positions": scene.label_xy,
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
    variant = rng_pick(rng, variants)
    keys, pool = (touching, apart) if variant == "contact" else (apart, touching)
    key = rng_pick(rng, keys)
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
    key = rng_pick(rng, keys)
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
    key = rng_pick(rng, touching)
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
