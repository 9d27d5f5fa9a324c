"""PDB and Tripos MOL2 text of the example structures `examples.py` builds."""

from __future__ import annotations

from microvqa_tui.pipeline.spatial.chem import Protein


def pdb_text(protein: Protein, title: str) -> str:
    lines = [f"REMARK   1 {title}"]
    serial = 0
    for res in protein.residues:
        for a in res.atoms:
            serial += 1
            name, element = protein.names[a], protein.elements[a]
            field = f" {name:<3s}" if len(name) < 4 and len(element) == 1 else f"{name:<4s}"
            x, y, z = protein.coords[a]
            lines.append(
                f"ATOM  {serial:5d} {field}{'':1s}{res.name:3s} {res.chain:1s}{res.number:4d}"
                f"{res.icode or '':1s}   {x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{0.0:6.2f}"
                f"          {element.upper():>2s}  "
            )
        lines.append(f"TER   {serial + 1:5d}      {res.name:3s} {res.chain:1s}{res.number:4d}")
        serial += 1
    lines.append("END")
    return "\n".join(lines) + "\n"


def mol2_text(mol, name: str) -> str:
    """Tripos MOL2 with Kekulé bonds and hybridisation-based SYBYL types (RDKit re-reads it)."""
    from rdkit import Chem  # RDKit loads only when examples are rebuilt

    mol = Chem.Mol(mol)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    conf = mol.GetConformer()
    lines = [
        "@<TRIPOS>MOLECULE",
        name,
        f"{mol.GetNumAtoms()} {mol.GetNumBonds()} 0 0 0",
        "SMALL",
        "NO_CHARGES",
        "",
        "@<TRIPOS>ATOM",
    ]
    counts: dict[str, int] = {}
    for atom in mol.GetAtoms():
        sym = atom.GetSymbol()
        counts[sym] = counts.get(sym, 0) + 1
        p = conf.GetAtomPosition(atom.GetIdx())
        lines.append(
            f"{atom.GetIdx() + 1:7d} {sym + str(counts[sym]):<8s}{p.x:10.4f}{p.y:10.4f}{p.z:10.4f}"
            f" {_sybyl(atom):<6s}     1 LIG1        0.0000"
        )
    lines.append("@<TRIPOS>BOND")
    for k, bond in enumerate(mol.GetBonds(), start=1):
        order = {1.0: "1", 2.0: "2", 3.0: "3"}[bond.GetBondTypeAsDouble()]
        lines.append(f"{k:6d}{bond.GetBeginAtomIdx() + 1:6d}{bond.GetEndAtomIdx() + 1:6d} {order}")
    return "\n".join(lines) + "\n"


def _sybyl(atom) -> str:
    from rdkit.Chem import HybridizationType as H

    sym, hyb = atom.GetSymbol(), atom.GetHybridization()
    if sym == "C":
        return {H.SP: "C.1", H.SP2: "C.2"}.get(hyb, "C.3")
    if sym == "N":
        if atom.GetDegree() == 3 and hyb == H.SP2:
            return "N.pl3"
        if atom.GetFormalCharge() > 0 and atom.GetDegree() == 4:
            return "N.4"
        return {H.SP: "N.1", H.SP2: "N.2"}.get(hyb, "N.3")
    if sym == "O":
        return "O.2" if any(b.GetBondTypeAsDouble() == 2 for b in atom.GetBonds()) else "O.3"
    if sym == "S":
        return "S.3"
    return sym
