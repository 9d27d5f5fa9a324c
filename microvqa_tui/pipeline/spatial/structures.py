"""Reading user-provided structures: small molecules and protein–ligand complexes.

Layout of a structures folder (searched recursively):

* a complex is a folder holding `<id>_protein.pdb` (or .cif / .mmcif / .ent) and
  `<id>_ligand.sdf` (or .mol2 / .mol) — the PDBbind layout; `<id>_pocket.pdb` is ignored
  (the pocket is cut from the protein around the ligand);
* any other .sdf / .mol / .mol2 file holds small molecules (an SDF may hold several).

Ligands and molecules are read with RDKit (hydrogens kept; added with 3D coordinates when
the file has none); proteins with gemmi (waters dropped, first model, alternate locations
reduced to the first). Both libraries load only when a molecular family is asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microvqa_tui.assets import SPATIAL_DIR
from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.spatial.chem import Molecule, Protein, Residue

PROTEIN_SUFFIXES = (".pdb", ".cif", ".mmcif", ".ent")
LIGAND_SUFFIXES = (".sdf", ".mol2", ".mol")
BUNDLED = SPATIAL_DIR


def bundled_structures() -> Path:
    """The example structures shipped with the package (`microvqa_tui/assets/spatial`)."""
    return BUNDLED


@dataclass(frozen=True)
class ComplexFiles:
    id: str
    protein: Path
    ligand: Path


@dataclass
class StructureSet:
    root: Path
    molecules: list[Path]  # standalone molecule files
    complexes: list[ComplexFiles]


def discover(root: Path) -> StructureSet:
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(
            f"structures folder not found: {root}",
            hint="pass --structures DIR with PDBbind-style complexes or .sdf/.mol2 molecules",
        )
    complexes: list[ComplexFiles] = []
    used: set[Path] = set()
    for protein in sorted(root.rglob("*_protein*")):
        if protein.suffix.lower() not in PROTEIN_SUFFIXES or not protein.is_file():
            continue
        cid = protein.name[: protein.name.index("_protein")]
        ligand = next(
            (
                protein.with_name(f"{cid}_ligand{suffix}")
                for suffix in LIGAND_SUFFIXES
                if protein.with_name(f"{cid}_ligand{suffix}").is_file()
            ),
            None,
        )
        if ligand is None:
            continue
        complexes.append(ComplexFiles(cid, protein, ligand))
        used.add(ligand)
    molecules = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in LIGAND_SUFFIXES and p not in used
    )
    return StructureSet(root, molecules, complexes)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- RDKit


def _rdkit():
    try:
        from rdkit import Chem, RDLogger
    except ImportError:  # pragma: no cover - depends on the environment
        raise PipelineError("molecular families need RDKit", hint="pip install rdkit") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def _rd_molecules(path: Path) -> list:
    Chem = _rdkit()
    suffix = path.suffix.lower()
    if suffix == ".mol2":
        mol = Chem.MolFromMol2File(str(path), removeHs=False)
        if mol is None:
            mol = Chem.MolFromMol2File(str(path), sanitize=False, removeHs=False)
        return [mol]
    if suffix == ".mol":
        mol = Chem.MolFromMolFile(str(path), removeHs=False)
        if mol is None:
            mol = Chem.MolFromMolFile(str(path), sanitize=False, removeHs=False)
        return [mol]
    supplier = Chem.SDMolSupplier(str(path), removeHs=False)
    mols = list(supplier)
    if any(m is None for m in mols):
        raw = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)
        mols = [m if m is not None else r for m, r in zip(mols, raw, strict=False)]
    return mols


def _to_molecule(mol, name: str, source: str, record: int) -> Molecule:
    Chem = _rdkit()
    hydrogens = "file"
    if mol.GetNumConformers() == 0:
        raise PipelineError(f"{source}: record {record} has no coordinates")
    if not any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()):
        try:
            mol.UpdatePropertyCache(strict=False)
            mol = Chem.AddHs(mol, addCoords=True)
            hydrogens = "added"
        except Exception:  # an unsanitisable ligand keeps its heavy atoms only
            hydrogens = "none"
    conf = mol.GetConformer()
    coords = np.array(conf.GetPositions(), dtype=np.float64)
    if mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        name = mol.GetProp("_Name").strip()
    return Molecule(
        name=name,
        coords=coords,
        elements=[a.GetSymbol() for a in mol.GetAtoms()],
        bonds=[(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()],
        charges=np.array([a.GetFormalCharge() for a in mol.GetAtoms()]),
        source=source,
        record=record,
        hydrogens=hydrogens,
    )


def load_molecules(path: Path, root: Path) -> list[Molecule]:
    """Every readable molecule of a file (unreadable records are skipped)."""
    source = _relative(path, root)
    out: list[Molecule] = []
    for record, mol in enumerate(_rd_molecules(path)):
        if mol is None or mol.GetNumAtoms() == 0:
            continue
        try:
            out.append(_to_molecule(mol, path.stem, source, record))
        except PipelineError:
            continue
    return out


def load_ligand(path: Path, root: Path) -> Molecule:
    mols = load_molecules(path, root)
    if not mols:
        raise PipelineError(f"cannot read a ligand from {path}")
    return mols[0]


# --------------------------------------------------------------------------- gemmi


def load_protein(path: Path) -> Protein:
    try:
        import gemmi
    except ImportError:  # pragma: no cover - depends on the environment
        raise PipelineError("complex families need gemmi", hint="pip install gemmi") from None
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise PipelineError(f"cannot read protein {path}: {exc}") from None
    st.remove_waters()
    if len(st) == 0:
        raise PipelineError(f"no model in {path}")
    model = st[0]
    coords: list[list[float]] = []
    elements: list[str] = []
    names: list[str] = []
    residue_of: list[int] = []
    residues: list[Residue] = []
    for chain in model:
        for res in chain:
            start = len(coords)
            seen: set[str] = set()
            for atom in res:
                if atom.name in seen:  # alternate location: keep the first
                    continue
                seen.add(atom.name)
                element = atom.element.name
                element = "H" if element in ("H", "D") else element.capitalize()
                coords.append([atom.pos.x, atom.pos.y, atom.pos.z])
                elements.append(element)
                names.append(atom.name)
                residue_of.append(len(residues))
            if len(coords) > start:
                residues.append(
                    Residue(
                        chain=chain.name,
                        number=int(res.seqid.num),
                        icode=res.seqid.icode.strip(),
                        name=res.name,
                        atoms=np.arange(start, len(coords)),
                    )
                )
    if not coords:
        raise PipelineError(f"no atoms in {path}")
    return Protein(np.array(coords), elements, names, np.array(residue_of), residues)


@dataclass
class Complex:
    id: str
    pocket: Protein  # residues within the pocket radius of the ligand
    ligand: Molecule
    protein_file: str
    ligand_file: str
    protein_sha256: str
    ligand_sha256: str


def load_complex(files: ComplexFiles, root: Path, pocket_radius: float) -> Complex:
    from microvqa_tui.pipeline.spatial.chem import pocket

    ligand = load_ligand(files.ligand, root)
    protein = load_protein(files.protein)
    return Complex(
        id=files.id,
        pocket=pocket(protein, ligand, pocket_radius),
        ligand=ligand,
        protein_file=_relative(files.protein, root),
        ligand_file=_relative(files.ligand, root),
        protein_sha256=file_sha256(files.protein),
        ligand_sha256=file_sha256(files.ligand),
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
