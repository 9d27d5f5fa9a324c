"""Molecular structure tasks: the structures they draw on and the geometry they share.

The families live in `molview.py` (two views of one molecule: mol_rotation,
mol_translation, mol_zoom) and `interaction.py` (one labelled image of a ligand and some
pocket residues: contacts, interaction_site, hbond). Definitions of contacts and hydrogen
bonds: `chem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.pipeline.spatial.chem import Molecule
from microvqa_tui.pipeline.spatial.structures import (
    Complex,
    StructureSet,
    bundled_structures,
    file_sha256,
    load_complex,
    load_molecules,
)

MAX_SCALE = 45.0  # pixels per Å


def rng_pick(rng: np.random.Generator, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


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


def fit_scale(radius: float, size: int, margin: float) -> float:
    return min(MAX_SCALE, (size / 2 - margin) / max(radius, 1e-3))


def polar_visible(elements: list[str], bonds: list[tuple[int, int]]) -> np.ndarray:
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

    def source(self, file: str, original_id: str, article: str) -> dict[str, str]:
        """The `source` of an item drawn from `file`; `article` groups items of one
        structure (an article id, so splits keep them together)."""
        licence, attribution = self.licence()
        return {
            "source": f"structure:{file}",
            "original_id": original_id,
            "article_id": f"spatial:{article}",
            "license": licence,
            "attribution": attribution,
        }
