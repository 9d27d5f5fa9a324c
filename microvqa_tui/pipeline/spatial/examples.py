"""Build the redistributable example structures in assets/spatial (needs RDKit).

    python -m microvqa_tui.pipeline.spatial.examples assets/spatial

* molecules/*.sdf — small molecules embedded in 3D by RDKit (ETKDG + MMFF) from SMILES
  (chemical structures are facts; the coordinates are computed here: CC0);
* complexes/<id>/<id>_protein.pdb + <id>_ligand.sdf|mol2 — SYNTHETIC pockets: isolated
  amino-acid residues (ideal geometry from RDKit) placed by a seeded search around an
  embedded ligand so that designed hydrogen bonds, hydrophobic contacts and a second shell
  of non-contacting residues exist. They are not experimental structures (CC0).

The build is deterministic for a given RDKit version; the committed files are what the
generator and the tests read, so the build need not be re-run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microvqa_tui.pipeline.spatial.chem import (
    Molecule,
    Protein,
    Residue,
    hydrogen_bonds,
    residue_min_distances,
)
from microvqa_tui.pipeline.spatial.render3d import random_rotation
from microvqa_tui.pipeline.spatial.structure_files import mol2_text, pdb_text

MOLECULES = {
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "ibuprofen": "CC(C)CC1=CC=C(C=C1)[C@H](C)C(=O)O",
    "paracetamol": "CC(=O)NC1=CC=C(C=C1)O",
    "nicotine": "CN1CCC[C@H]1C1=CN=CC=C1",
    "serotonin": "NCCC1=CNC2=C1C=C(O)C=C2",
}

AA = {
    "ALA": "A",
    "ASN": "N",
    "ASP": "D",
    "GLN": "Q",
    "GLU": "E",
    "GLY": "G",
    "LEU": "L",
    "LYS": "K",
    "MET": "M",
    "PHE": "F",
    "SER": "S",
    "THR": "T",
    "TRP": "W",
    "TYR": "Y",
    "VAL": "V",
    "ILE": "I",
    "HIS": "H",
    "ARG": "R",
}


@dataclass
class Site:
    kind: str  # donate (residue donates) | accept (residue accepts) | contact | shell
    resname: str
    number: int
    atom: str = ""  # residue atom at the interaction
    ligand_smarts: str = ""  # ligand atom (mapped :1) at the interaction


COMPLEXES = {
    "syn1": {
        "ligand": ("paracetamol", MOLECULES["paracetamol"]),
        "ligand_format": "sdf",
        "sites": [
            Site("donate", "SER", 45, "OG", "[CX3]=[OX1:1]"),
            Site("accept", "ASP", 88, "OD1", "c[OX2:1][H]"),
            Site("accept", "GLN", 112, "OE1", "[NX3:1]([H])C=O"),
            Site("contact", "PHE", 30, "CZ", "[CH3:1]"),
            Site("contact", "LEU", 66, "CD1", "[cH:1]"),
            Site("shell", "ALA", 47),
            Site("shell", "VAL", 90),
            Site("shell", "THR", 114),
            Site("shell", "LYS", 33),
        ],
        "seed": 11,
    },
    "syn2": {
        "ligand": ("caffeine", MOLECULES["caffeine"]),
        "ligand_format": "mol2",
        "sites": [
            Site("donate", "SER", 140, "OG", "[n;X2:1]"),
            Site("donate", "ASN", 52, "ND2", "[#6]=[OX1:1]"),
            Site("donate", "LYS", 78, "NZ", "[#6]=[OX1:1]"),
            Site("contact", "LEU", 101, "CD1", "[CH3:1]"),
            Site("contact", "VAL", 24, "CG1", "[cH:1]"),
            Site("shell", "ALA", 55),
            Site("shell", "MET", 98),
            Site("shell", "GLY", 142),
            Site("shell", "THR", 26),
        ],
        "seed": 23,
    },
}


def _chem():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    return Chem, AllChem


def embed(smiles: str, seed: int = 42, name: str = ""):
    Chem, AllChem = _chem()
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError(f"cannot embed {smiles}")
    AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    if name:
        mol.SetProp("_Name", name)
    return mol


def to_molecule(mol, name: str) -> Molecule:
    return Molecule(
        name=name,
        coords=mol.GetConformer().GetPositions(),
        elements=[a.GetSymbol() for a in mol.GetAtoms()],
        bonds=[(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()],
        charges=np.array([a.GetFormalCharge() for a in mol.GetAtoms()]),
    )


# --------------------------------------------------------------------------- residues


@dataclass
class ResidueTemplate:
    resname: str
    names: list[str]
    elements: list[str]
    coords: np.ndarray
    bonds: list[tuple[int, int]]

    def index(self, name: str) -> int:
        return self.names.index(name)


def residue_template(resname: str, seed: int) -> ResidueTemplate:
    """One free amino acid with hydrogens, ideal geometry (ETKDG + MMFF), PDB atom names."""
    Chem, AllChem = _chem()
    mol = Chem.AddHs(Chem.MolFromSequence(AA[resname]), addResidueInfo=True)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    AllChem.EmbedMolecule(mol, params)
    AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    names: list[str] = []
    for atom in mol.GetAtoms():
        names.append(atom.GetPDBResidueInfo().GetName().strip() if atom.GetAtomicNum() > 1 else "")
    # PDB-style hydrogen names from the heavy atom they sit on: HG on OG, HD21/HD22 on ND2 ...
    for heavy in mol.GetAtoms():
        if heavy.GetAtomicNum() == 1:
            continue
        hs = [n.GetIdx() for n in heavy.GetNeighbors() if n.GetAtomicNum() == 1]
        base = names[heavy.GetIdx()]
        stem = "H" + base[1:] if base != "N" else "H"
        for k, h in enumerate(hs):
            names[h] = (stem + str(k + 1)) if len(hs) > 1 else stem
            names[h] = names[h][:4]
    return ResidueTemplate(
        resname=resname,
        names=names,
        elements=[a.GetSymbol() for a in mol.GetAtoms()],
        coords=mol.GetConformer().GetPositions(),
        bonds=[(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()],
    )


def _rotation_aligning(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A rotation taking unit vector a onto unit vector b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-9:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1, 0, 0] if abs(a[0]) < 0.9 else [0, 1, 0])
        perp /= np.linalg.norm(perp)
        return 2 * np.outer(perp, perp) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def _spin(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


class Builder:
    def __init__(self, ligand_mol, seed: int) -> None:
        Chem, _ = _chem()
        self.Chem = Chem
        self.mol = ligand_mol
        self.lig = to_molecule(ligand_mol, "ligand")
        self.lig_xyz = self.lig.coords
        self.lig_heavy = self.lig_xyz[self.lig.heavy]
        self.centroid = self.lig_heavy.mean(axis=0)
        self.rng = np.random.default_rng(seed)
        self.placed: list[tuple[Site, ResidueTemplate, np.ndarray]] = []

    def ligand_atom(self, smarts: str) -> int:
        patt = self.Chem.MolFromSmarts(smarts)
        mapped = next(a.GetIdx() for a in patt.GetAtoms() if a.GetAtomMapNum() == 1)
        matches = sorted({m[mapped] for m in self.mol.GetSubstructMatches(patt)})
        if not matches:
            raise RuntimeError(f"no ligand atom matches {smarts}")
        return matches[int(self.rng.integers(len(matches)))]

    def _others(self) -> np.ndarray:
        if not self.placed:
            return np.zeros((0, 3))
        return np.vstack([xyz for _, _, xyz in self.placed])

    def _clearance(self, tpl: ResidueTemplate, xyz: np.ndarray, skip: set[int]) -> float:
        """Score ≥ 0 when the residue clashes with nothing (bigger = roomier)."""
        heavy = np.array([e != "H" for e in tpl.elements])
        keep = np.array([i not in skip for i in range(len(xyz))])
        h_mask = heavy & keep
        d_lig = np.linalg.norm(xyz[h_mask][:, None] - self.lig_heavy[None], axis=-1).min()
        score = d_lig - 3.3
        hyd = (~heavy) & keep
        if hyd.any():
            d_h = np.linalg.norm(xyz[hyd][:, None] - self.lig_xyz[None], axis=-1).min()
            score = min(score, d_h - 2.3)
        others = self._others()
        if len(others):
            d_o = np.linalg.norm(xyz[:, None] - others[None], axis=-1).min()
            score = min(score, d_o - 2.6)
        return score

    def place(self, site: Site) -> None:
        # several conformers: a hydroxyl H turned toward the backbone cannot reach out
        templates = [
            residue_template(site.resname, int(self.rng.integers(1 << 30))) for _ in range(6)
        ]
        best: tuple[float, ResidueTemplate, np.ndarray] | None = None
        for trial in range(3000):
            tpl = templates[trial % len(templates)]
            xyz = self._candidate(site, tpl)
            if xyz is None:
                continue
            skip: set[int] = set()
            if site.atom:  # the interacting atom and its hydrogens may come close
                k = tpl.index(site.atom)
                skip = {k} | {
                    j
                    for a, b in tpl.bonds
                    for i, j in ((a, b), (b, a))
                    if i == k and tpl.elements[j] == "H"
                }
            score = self._clearance(tpl, xyz, skip)
            if site.kind == "shell":
                dmin = np.linalg.norm(
                    xyz[[e != "H" for e in tpl.elements]][:, None] - self.lig_heavy[None], axis=-1
                ).min()
                if not 4.9 <= dmin <= 6.5:
                    continue
            # prefer residues whose body points away from the ligand
            body = np.linalg.norm(xyz - self.centroid, axis=1).mean()
            total = min(score, 1.0) * 10 + (body * 0.1 if site.kind != "shell" else 0.0)
            if score <= 0 or (best is not None and total <= best[0]):
                continue
            if self._interactions_ok(site, tpl, xyz):
                best = (total, tpl, xyz)
        if best is None:
            raise RuntimeError(f"could not place {site}")
        self.placed.append((site, best[1], best[2]))

    def _candidate(self, site: Site, tpl: ResidueTemplate) -> np.ndarray | None:
        rng = self.rng
        base = tpl.coords
        if site.kind == "shell":
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            rot = random_rotation(rng)
            xyz = (base - base.mean(axis=0)) @ rot.T
            radius = np.linalg.norm(self.lig_heavy - self.centroid, axis=1).max() + rng.uniform(
                4.5, 7.5
            )
            return xyz + self.centroid + direction * radius
        k = tpl.index(site.atom)
        lig_atom = self.ligand_atom(site.ligand_smarts)
        p_lig = self.lig_xyz[lig_atom]
        # away from the atom's heavy neighbours (a lone pair / C–H direction), else from the
        # ligand centre
        nbrs = [
            j
            for a, b in self.lig.bonds
            for i, j in ((a, b), (b, a))
            if i == lig_atom and self.lig.elements[j] != "H"
        ]
        outward = p_lig - (self.lig_xyz[nbrs].mean(axis=0) if nbrs else self.centroid)
        outward /= np.linalg.norm(outward)
        jitter = rng.normal(size=3) * 0.35
        u = outward + jitter
        u /= np.linalg.norm(u)
        if site.kind == "donate":  # residue D–H points at the ligand acceptor
            h = next(
                j
                for a, b in tpl.bonds
                for i, j in ((a, b), (b, a))
                if i == k and tpl.elements[j] == "H"
            )
            target = p_lig + u * rng.uniform(2.75, 3.05)
            dh = base[h] - base[k]
            aim = p_lig + rng.normal(size=3) * 0.45 - target  # not perfectly linear
            rot = _rotation_aligning(dh, aim)
            rot = _spin(aim, rng.uniform(0, 2 * np.pi)) @ rot
            return (base - base[k]) @ rot.T + target
        if site.kind == "accept":  # ligand D–H points at the residue acceptor
            hyd = [
                j
                for a, b in self.lig.bonds
                for i, j in ((a, b), (b, a))
                if i == lig_atom and self.lig.elements[j] == "H"
            ]
            if not hyd:
                return None
            ph = self.lig_xyz[hyd[0]]
            dh = (ph - p_lig) / np.linalg.norm(ph - p_lig)
            target = ph + dh * rng.uniform(1.8, 2.0) + rng.normal(size=3) * 0.35
            rot = random_rotation(rng)
            return (base - base[k]) @ rot.T + target
        # contact: a residue carbon about 3.6–3.9 Å from a ligand atom
        target = p_lig + u * rng.uniform(3.4, 3.7)
        rot = random_rotation(rng)
        return (base - base[k]) @ rot.T + target

    def _interactions_ok(self, site: Site, tpl: ResidueTemplate, xyz: np.ndarray) -> bool:
        protein = _protein([(site, tpl, xyz)])
        bonds, _ = hydrogen_bonds(protein, self.lig, 3.5, 120.0)
        loose, _ = hydrogen_bonds(protein, self.lig, 3.9, 100.0)
        dmin = residue_min_distances(protein, self.lig)[0]
        if site.kind in ("donate", "accept"):
            return any(b.distance <= 3.2 and b.angle >= 140 for b in bonds)
        if site.kind == "contact":
            return not loose and dmin <= 3.75
        return not loose and dmin >= 4.9


def _protein(placed: list[tuple[Site, ResidueTemplate, np.ndarray]]) -> Protein:
    coords, elements, names, residue_of, residues = [], [], [], [], []
    for r, (site, tpl, xyz) in enumerate(sorted(placed, key=lambda p: p[0].number)):
        start = len(coords)
        coords.extend(xyz.tolist())
        elements.extend(tpl.elements)
        names.extend(tpl.names)
        residue_of.extend([r] * len(xyz))
        residues.append(Residue("A", site.number, "", site.resname, np.arange(start, len(coords))))
    bonds = []
    offset = 0
    for _site, tpl, xyz in sorted(placed, key=lambda p: p[0].number):
        bonds.extend((a + offset, b + offset) for a, b in tpl.bonds)
        offset += len(xyz)
    return Protein(np.array(coords), elements, names, np.array(residue_of), residues, bonds)


# --------------------------------------------------------------------------- build


def build(out: Path) -> dict:
    Chem, _ = _chem()
    out = Path(out)
    (out / "molecules").mkdir(parents=True, exist_ok=True)
    summary: dict = {"molecules": {}, "complexes": {}}
    for name, smiles in MOLECULES.items():
        mol = embed(smiles, name=name)
        (out / "molecules" / f"{name}.sdf").write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
        summary["molecules"][name] = {"smiles": smiles, "atoms": mol.GetNumAtoms()}
    for cid, spec in COMPLEXES.items():
        lig_name, smiles = spec["ligand"]
        mol = embed(smiles, seed=spec["seed"], name=lig_name)
        conf = mol.GetConformer()
        centre = conf.GetPositions().mean(axis=0)
        for i in range(mol.GetNumAtoms()):  # the ligand sits at the origin
            p = conf.GetAtomPosition(i)
            conf.SetAtomPosition(i, (p.x - centre[0], p.y - centre[1], p.z - centre[2]))
        builder = Builder(mol, spec["seed"])
        for site in spec["sites"]:
            builder.place(site)
        protein = _protein(builder.placed)
        folder = out / "complexes" / cid
        folder.mkdir(parents=True, exist_ok=True)
        title = f"SYNTHETIC pocket {cid} (microvqa_tui examples.py; CC0-1.0; not an experimental structure)"
        (folder / f"{cid}_protein.pdb").write_text(pdb_text(protein, title))
        if spec["ligand_format"] == "mol2":
            (folder / f"{cid}_ligand.mol2").write_text(mol2_text(mol, lig_name))
        else:
            (folder / f"{cid}_ligand.sdf").write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
        ligand = to_molecule(mol, lig_name)
        bonds, _ = hydrogen_bonds(protein, ligand)
        dmin = residue_min_distances(protein, ligand)
        summary["complexes"][cid] = {
            "ligand": lig_name,
            "residues": {
                protein.label(i): {
                    "min_heavy_distance": round(float(dmin[i]), 2),
                    "hbonds": sum(1 for b in bonds if b.residue == i),
                }
                for i in range(len(protein.residues))
            },
        }
    return summary


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path("assets/spatial")
    print(json.dumps(build(out), indent=2))


if __name__ == "__main__":
    main()
