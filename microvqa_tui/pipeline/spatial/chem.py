"""Molecules, pockets and their interactions, from coordinates only (numpy).

Definitions (written into each item's parameters and the README of assets/spatial):

* Contact: a residue contacts the ligand when any of its heavy atoms lies within the cut-off
  (default 4.0 Å) of any ligand heavy atom.
* Donor: an N or O atom carrying at least one hydrogen (a covalent neighbour H).
* Acceptor: any O; an N with no hydrogen, at most two heavy neighbours and formal charge ≤ 0
  (pyridine-like, nitrile, imine N — not amide, amine or ammonium N).
* Hydrogen bond: donor D–H and acceptor A on different partners (protein vs ligand) with
  d(D, A) ≤ 3.5 Å and angle D–H···A ≥ 120°. When a protein carries no hydrogens at all, its
  donors are taken from residue templates and the angle test becomes X–D···A ≥ 90° on the
  donor's heavy neighbour X (`hbond_mode` "heavy_atom" in the parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Jmol's CPK colours (RGB 0–255).
CPK = {
    "H": (255, 255, 255),
    "C": (144, 144, 144),
    "N": (48, 80, 248),
    "O": (255, 13, 13),
    "F": (144, 224, 80),
    "P": (255, 128, 0),
    "S": (255, 255, 48),
    "Cl": (31, 240, 31),
    "Br": (166, 41, 41),
    "I": (148, 0, 148),
    "B": (255, 181, 181),
    "Se": (255, 161, 0),
    "Fe": (224, 102, 51),
    "Zn": (125, 128, 176),
    "Mg": (138, 255, 0),
    "Ca": (61, 255, 0),
    "Na": (171, 92, 242),
    "K": (143, 64, 212),
}
OTHER_COLOUR = (255, 20, 147)
PROTEIN_CARBON = (200, 200, 200)  # lighter than the ligand's carbons, to tell them apart

# Bondi van der Waals radii (Å).
VDW = {
    "H": 1.20,
    "C": 1.70,
    "N": 1.55,
    "O": 1.52,
    "F": 1.47,
    "P": 1.80,
    "S": 1.80,
    "Cl": 1.75,
    "Br": 1.85,
    "I": 1.98,
    "Se": 1.90,
}
# Covalent radii (Å), for bonds perceived from distances in proteins.
COVALENT = {
    "H": 0.31,
    "C": 0.76,
    "N": 0.71,
    "O": 0.66,
    "S": 1.05,
    "P": 1.07,
    "Se": 1.20,
    "F": 0.57,
    "Cl": 1.02,
    "Br": 1.20,
    "I": 1.39,
}

# Donors of the standard residues, used only when a protein file has no hydrogens.
TEMPLATE_DONORS = {
    "*": ("N",),
    "SER": ("OG",),
    "THR": ("OG1",),
    "TYR": ("OH",),
    "CYS": (),
    "LYS": ("NZ",),
    "ARG": ("NE", "NH1", "NH2"),
    "ASN": ("ND2",),
    "GLN": ("NE2",),
    "TRP": ("NE1",),
    "HIS": ("ND1", "NE2"),
}


def colour(element: str) -> tuple[int, int, int]:
    return CPK.get(element, OTHER_COLOUR)


@dataclass
class Molecule:
    """A ligand or small molecule: coordinates (Å), elements, bonds, formal charges."""

    name: str
    coords: np.ndarray
    elements: list[str]
    bonds: list[tuple[int, int]]
    charges: np.ndarray
    source: str = ""  # file, relative to the structures folder
    record: int = 0  # record number inside a multi-record file
    hydrogens: str = "file"  # file | added

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.float64)
        self.charges = np.asarray(self.charges, dtype=np.int64)

    @property
    def heavy(self) -> np.ndarray:
        return np.array([e != "H" for e in self.elements])

    def neighbours(self) -> list[list[int]]:
        nb: list[list[int]] = [[] for _ in self.elements]
        for i, j in self.bonds:
            nb[i].append(j)
            nb[j].append(i)
        return nb

    def centroid(self) -> np.ndarray:
        return self.coords[self.heavy].mean(axis=0)


@dataclass
class Residue:
    chain: str
    number: int
    icode: str
    name: str
    atoms: np.ndarray  # indices into the protein's atom arrays

    def label(self, with_chain: bool = False) -> str:
        text = f"{self.name} {self.number}{self.icode.strip()}"
        return f"{text} ({self.chain})" if with_chain else text


@dataclass
class Protein:
    """Atoms of a protein (or the pocket part of one) grouped in residues."""

    coords: np.ndarray
    elements: list[str]
    names: list[str]
    residue_of: np.ndarray  # residue index of each atom
    residues: list[Residue]
    bonds: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.float64)
        self.residue_of = np.asarray(self.residue_of, dtype=np.int64)
        if not self.bonds:
            self.bonds = perceive_protein_bonds(self)

    @property
    def heavy(self) -> np.ndarray:
        return np.array([e != "H" for e in self.elements])

    @property
    def has_hydrogens(self) -> bool:
        return any(e == "H" for e in self.elements)

    @property
    def multichain(self) -> bool:
        return len({r.chain for r in self.residues}) > 1

    def label(self, index: int) -> str:
        return self.residues[index].label(self.multichain)

    def subset(self, residue_indices: list[int]) -> Protein:
        keep = sorted(residue_indices)
        atoms = np.concatenate([self.residues[r].atoms for r in keep]) if keep else np.zeros(0, int)
        remap = {int(a): i for i, a in enumerate(atoms)}
        residues, residue_of = [], np.empty(len(atoms), dtype=np.int64)
        for new, r in enumerate(keep):
            old = self.residues[r]
            idx = np.array([remap[int(a)] for a in old.atoms], dtype=np.int64)
            residue_of[idx] = new
            residues.append(Residue(old.chain, old.number, old.icode, old.name, idx))
        bonds = [(remap[i], remap[j]) for i, j in self.bonds if i in remap and j in remap]
        return Protein(
            coords=self.coords[atoms],
            elements=[self.elements[a] for a in atoms],
            names=[self.names[a] for a in atoms],
            residue_of=residue_of,
            residues=residues,
            bonds=bonds,
        )

    def neighbours(self) -> list[list[int]]:
        nb: list[list[int]] = [[] for _ in self.elements]
        for i, j in self.bonds:
            nb[i].append(j)
            nb[j].append(i)
        return nb


def perceive_protein_bonds(protein: Protein) -> list[tuple[int, int]]:
    """Covalent bonds from distances: within each residue, plus the peptide bond C(i)–N(j)
    between residues of one chain (any pair closer than 1.9 Å)."""
    bonds: list[tuple[int, int]] = []
    radii = np.array([COVALENT.get(e, 0.8) for e in protein.elements])
    for res in protein.residues:
        idx = res.atoms
        if len(idx) < 2:
            continue
        xyz = protein.coords[idx]
        d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
        limit = radii[idx][:, None] + radii[idx][None] + 0.45
        ii, jj = np.nonzero(np.triu((d < limit) & (d > 0.4), 1))
        bonds.extend((int(idx[i]), int(idx[j])) for i, j in zip(ii, jj, strict=True))
    c_atoms = [i for i, n in enumerate(protein.names) if n == "C"]
    n_atoms = [i for i, n in enumerate(protein.names) if n == "N"]
    if c_atoms and n_atoms:
        d = np.linalg.norm(
            protein.coords[c_atoms][:, None] - protein.coords[n_atoms][None], axis=-1
        )
        for ci, ni in zip(*np.nonzero(d < 1.9), strict=True):
            a, b = c_atoms[ci], n_atoms[ni]
            if protein.residue_of[a] != protein.residue_of[b]:
                bonds.append((a, b))
    return bonds


# --------------------------------------------------------------------------- distances


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All distances between two point sets (|a| × |b|), computed in blocks of rows."""
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), 2048):
        block = a[start : start + 2048]
        out[start : start + 2048] = np.sqrt(((block[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return out


def residue_min_distances(protein: Protein, ligand: Molecule) -> np.ndarray:
    """Per residue: the smallest heavy-atom distance to the ligand's heavy atoms (inf when a
    residue has no heavy atom)."""
    lig = ligand.coords[ligand.heavy]
    heavy = protein.heavy
    out = np.full(len(protein.residues), np.inf)
    if len(lig) == 0 or not heavy.any():
        return out
    d = pair_distances(protein.coords, lig).min(axis=1)
    d[~heavy] = np.inf
    np.minimum.at(out, protein.residue_of, d)
    return out


def pocket(protein: Protein, ligand: Molecule, radius: float) -> Protein:
    """The residues with a heavy atom within `radius` Å of the ligand."""
    near = np.flatnonzero(residue_min_distances(protein, ligand) <= radius)
    return protein.subset([int(i) for i in near])


# --------------------------------------------------------------------------- hydrogen bonds


@dataclass(frozen=True)
class HBond:
    donor_side: str  # ligand | protein
    donor: int  # atom index on the donor side
    hydrogen: int  # -1 in heavy-atom mode
    acceptor: int  # atom index on the acceptor side
    residue: int  # residue index (protein side)
    distance: float  # donor–acceptor, Å
    angle: float  # D–H···A (or X–D···A in heavy-atom mode), degrees

    def to_params(self) -> dict:
        return {
            "donor_side": self.donor_side,
            "donor": self.donor,
            "hydrogen": self.hydrogen,
            "acceptor": self.acceptor,
            "residue": self.residue,
            "distance": round(self.distance, 3),
            "angle": round(self.angle, 1),
        }


def _roles(elements, neighbours, charges) -> tuple[list[list[int]], np.ndarray]:
    """Per atom: its hydrogens, and whether it is an acceptor."""
    hyd = [[j for j in nb if elements[j] == "H"] for nb in neighbours]
    acceptor = np.zeros(len(elements), dtype=bool)
    for i, e in enumerate(elements):
        if e == "O":
            acceptor[i] = True
        elif e == "N":
            heavy_degree = sum(1 for j in neighbours[i] if elements[j] != "H")
            acceptor[i] = not hyd[i] and heavy_degree <= 2 and charges[i] <= 0
    return hyd, acceptor


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Angle a–b–c at b, in degrees (atan2 form: stable near 0° and 180°)."""
    u, v = a - b, c - b
    return float(np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v)), np.dot(u, v))))


def hydrogen_bonds(
    protein: Protein, ligand: Molecule, max_distance: float = 3.5, min_angle: float = 120.0
) -> tuple[list[HBond], str]:
    """Every protein–ligand hydrogen bond, and the mode used ("hydrogens" or "heavy_atom")."""
    l_nb = ligand.neighbours()
    l_hyd, l_acc = _roles(ligand.elements, l_nb, ligand.charges)
    p_nb = protein.neighbours()
    p_hyd, p_acc = _roles(protein.elements, p_nb, np.zeros(len(protein.elements), int))
    mode = "hydrogens" if protein.has_hydrogens else "heavy_atom"
    if mode == "heavy_atom":
        p_donor = np.zeros(len(protein.elements), dtype=bool)
        for i, name in enumerate(protein.names):
            res = protein.residues[protein.residue_of[i]].name
            if name in TEMPLATE_DONORS["*"] and res != "PRO":
                p_donor[i] = True
            if name in TEMPLATE_DONORS.get(res, ()):
                p_donor[i] = True
        for i, name in enumerate(protein.names):  # histidine N may accept when no H is known
            if protein.residues[protein.residue_of[i]].name == "HIS" and name in ("ND1", "NE2"):
                p_acc[i] = True
    else:
        p_donor = np.array(
            [bool(h) and e in ("N", "O") for h, e in zip(p_hyd, protein.elements, strict=True)]
        )
    l_donor = np.array(
        [bool(h) and e in ("N", "O") for h, e in zip(l_hyd, ligand.elements, strict=True)]
    )

    bonds: list[HBond] = []
    # ligand donors -> protein acceptors, protein donors -> ligand acceptors
    for side, d_mask, a_mask, d_xyz, a_xyz, d_hyd, d_nb in (
        ("ligand", l_donor, p_acc, ligand.coords, protein.coords, l_hyd, l_nb),
        ("protein", p_donor, l_acc, protein.coords, ligand.coords, p_hyd, p_nb),
    ):
        donors, acceptors = np.flatnonzero(d_mask), np.flatnonzero(a_mask)
        if not len(donors) or not len(acceptors):
            continue
        dist = pair_distances(d_xyz[donors], a_xyz[acceptors])
        for di, ai in zip(*np.nonzero(dist <= max_distance), strict=True):
            d, a = int(donors[di]), int(acceptors[ai])
            residue = int(protein.residue_of[a] if side == "ligand" else protein.residue_of[d])
            if side == "protein" and mode == "heavy_atom":
                heavy_nb = [x for x in d_nb[d] if protein.elements[x] != "H"]
                angles = [_angle(d_xyz[x], d_xyz[d], a_xyz[a]) for x in heavy_nb]
                if angles and min(angles) >= 90.0:
                    bonds.append(HBond(side, d, -1, a, residue, float(dist[di, ai]), min(angles)))
                continue
            best = None
            for h in d_hyd[d]:
                ang = _angle(d_xyz[d], d_xyz[h], a_xyz[a])
                if ang >= min_angle and (best is None or ang > best[1]):
                    best = (h, ang)
            if best is not None:
                bonds.append(HBond(side, d, best[0], a, residue, float(dist[di, ai]), best[1]))
    return bonds, mode


def near_hbond_residues(
    protein: Protein, ligand: Molecule, max_distance: float, min_angle: float
) -> set[int]:
    """Residues with any donor–acceptor pair that comes near the criteria (looser limits):
    such residues are never used as "no hydrogen bond" distractors."""
    bonds, _ = hydrogen_bonds(protein, ligand, max_distance + 0.3, min_angle - 15.0)
    return {b.residue for b in bonds}
