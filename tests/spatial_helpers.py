"""Independent re-derivation of spatial items' answers, for the tests.

Nothing here imports the generator's geometry, chemistry or rendering code: images are
compared with scipy.ndimage / numpy FFT, option texts are parsed from the words the item
shows, structures are read from the files with plain-text parsers, and contacts and
hydrogen bonds are recomputed with scipy's cKDTree.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parent.parent
SAMPLE_IMAGES = REPO / "assets" / "sample" / "images"
STRUCTURES = REPO / "assets" / "spatial"


# ============================================================================ store set-up


def add_sample_figures(store, limit: int | None = None) -> list[str]:
    """Figure rows for the embedded sample images, written directly (no ingest)."""
    from store import content_id
    from store.schema import utcnow

    rows = []
    for path in sorted(SAMPLE_IMAGES.iterdir())[:limit]:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            width, height, fmt, mode = im.width, im.height, im.format, im.mode
        rows.append(
            {
                "figure_id": content_id(data),
                "content_hash": hashlib.sha256(data).hexdigest(),
                "image_bytes": data,
                "width": width,
                "height": height,
                "format": fmt,
                "mode": mode,
                "byte_size": len(data),
                "source_kind": "manifest",
                "source": str(path),
                "article_id": "PMC-TEST",
                "license": "CC0-1.0",
                "ingested_at": utcnow(),
            }
        )
    store.insert_new("figures", rows)
    return [r["figure_id"] for r in rows]


def spatial_mcqs(store) -> list[dict]:
    rows = store.page("mcqs", where="origin = 'spatial'", limit=100_000)
    for row in rows:
        row["params"] = json.loads(row["params_json"])
    return rows


def image_of(store, figure_id: str) -> np.ndarray:
    row = store.get("figures", figure_id, columns=["image_bytes"])
    with Image.open(io.BytesIO(row["image_bytes"])) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def panel_images(store, row: dict) -> list[np.ndarray]:
    """The two views of a two-panel item (or the two images of a pair)."""
    params = row["params"]
    if "panels" in params:
        full = image_of(store, row["image_ids"][0])
        return [full[y0:y1, x0:x1] for x0, y0, x1, y1 in params["panels"]]
    return [image_of(store, fid) for fid in row["image_ids"]]


def grey(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


# ============================================================================ option texts

DIRECTION_WORDS = {
    "right": (1, 0),
    "up and to the right": (1, -1),
    "up": (0, -1),
    "up and to the left": (-1, -1),
    "left": (-1, 0),
    "down and to the left": (-1, 1),
    "down": (0, 1),
    "down and to the right": (1, 1),
}


@dataclass
class MicroOption:
    theta_cw: float = 0.0  # clockwise turn of the content, degrees
    move: tuple[float, float] = (0.0, 0.0)  # field move, view-1 widths, y down
    zoom: float = 1.0  # magnification view 1 -> 2


def _direction_vector(words: str) -> np.ndarray:
    v = np.array(DIRECTION_WORDS[words], dtype=float)
    return v / np.linalg.norm(v)


def parse_micro_option(text: str) -> MicroOption:
    """Read a micrograph option the way a person would."""
    opt = MicroOption()
    m = re.search(r"moved (.+?) by (\d+)% of the field width", text)
    if m:
        vec = _direction_vector(m.group(1)) * int(m.group(2)) / 100
        opt.move = (float(vec[0]), float(vec[1]))
    m = re.search(r"[Rr]otated (\d+)° (clockwise|counter-clockwise)", text)
    if m:
        opt.theta_cw = int(m.group(1)) * (1 if m.group(2) == "clockwise" else -1)
    m = re.search(r"[Zz]oomed (in|out) ([\d.]+)×", text)
    if m:
        f = float(m.group(2))
        opt.zoom = f if m.group(1) == "in" else 1 / f
    return opt


# ============================================================================ image registration


def _shrink(img: np.ndarray, size: int) -> np.ndarray:
    return ndimage.zoom(img, size / img.shape[0], order=1, prefilter=False)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d else 0.0


def _sample(img: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """img at (row, col) pixel-centre coordinates; mask of points inside."""
    h, w = img.shape
    inside = (rows >= 0) & (rows <= h - 1) & (cols >= 0) & (cols <= w - 1)
    vals = ndimage.map_coordinates(img, [rows, cols], order=1, mode="nearest")
    return vals, inside


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (x, y; y down) of every pixel centre from the view centre."""
    c = np.arange(size) - (size - 1) / 2
    x, y = np.meshgrid(c, c)
    return x.ravel(), y.ravel()


def predicted_score(v1: np.ndarray, v2: np.ndarray, opt: MicroOption, size: int = 128) -> float:
    """Correlation of view 2 with view 1 warped by `opt`, over the overlap (view-2 frame, or
    view-1 frame when that overlap is larger)."""
    g1, g2 = _shrink(grey(v1), size), _shrink(grey(v2), size)
    x, y = _grid(size)
    t = math.radians(opt.theta_cw)
    c, s = math.cos(t), math.sin(t)
    mx, my = opt.move[0] * size, opt.move[1] * size
    # the content of view 1 at q1 appears in view 2 at q2 = zoom * R_cw(theta) * (q1 - move)
    # view-2 frame: q1 = R_cw(-theta) q2 / zoom + move
    x1 = (c * x + s * y) / opt.zoom + mx
    y1 = (-s * x + c * y) / opt.zoom + my
    va, ma = _sample(g1, y1 + (size - 1) / 2, x1 + (size - 1) / 2)
    # view-1 frame
    dx, dy = x - mx, y - my
    x2 = opt.zoom * (c * dx - s * dy)
    y2 = opt.zoom * (s * dx + c * dy)
    vb, mb = _sample(g2, y2 + (size - 1) / 2, x2 + (size - 1) / 2)
    if ma.mean() >= mb.mean():
        return _ncc(g2.ravel()[ma], va[ma]) if ma.mean() > 0.1 else -1.0
    return _ncc(g1.ravel()[mb], vb[mb]) if mb.mean() > 0.1 else -1.0


def estimate_rotation(v1: np.ndarray, v2: np.ndarray, size: int = 96) -> float:
    """Brute-force angle search (content turn, degrees clockwise) by correlation inside the
    inscribed disc: 2° steps, then 0.25° around the best."""
    g1, g2 = _shrink(grey(v1), size), _shrink(grey(v2), size)
    x, y = _grid(size)
    disc = x**2 + y**2 <= (0.47 * size) ** 2
    x, y = x[disc], y[disc]
    target = g2.ravel()[disc]

    def score(theta: float) -> float:
        t = math.radians(theta)
        c, s = math.cos(t), math.sin(t)
        x1, y1 = c * x + s * y, -s * x + c * y
        vals, _ = _sample(g1, y1 + (size - 1) / 2, x1 + (size - 1) / 2)
        return _ncc(target, vals)

    coarse = max(np.arange(-178, 181, 2.0), key=score)
    return float(max(np.arange(coarse - 2, coarse + 2.01, 0.25), key=score))


def estimate_translation(v1: np.ndarray, v2: np.ndarray) -> tuple[float, float]:
    """Phase correlation: the shift s (pixels, x right, y down) with view2(p) ≈ view1(p − s).
    The five strongest peaks are checked by correlating the overlap, the best is refined to
    sub-pixel precision by a parabola through its neighbours."""
    g1, g2 = grey(v1), grey(v2)
    h, w = g1.shape
    f1 = np.fft.fft2(g1 - g1.mean())
    f2 = np.fft.fft2(g2 - g2.mean())
    cross = f2 * np.conj(f1)
    r = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real

    def wrap(v, n):
        return v - n if v > n / 2 else v

    def overlap_ncc(sx: int, sy: int) -> float:
        a = g1[max(0, -sy) : h - max(0, sy), max(0, -sx) : w - max(0, sx)]
        b = g2[max(0, sy) : h - max(0, -sy), max(0, sx) : w - max(0, -sx)]
        return _ncc(a, b) if a.size > 0.2 * h * w else -1.0

    peaks = np.argsort(r.ravel())[::-1][:5]
    py, px = max(
        (np.unravel_index(p, r.shape) for p in peaks),
        key=lambda yx: overlap_ncc(int(wrap(yx[1], w)), int(wrap(yx[0], h))),
    )

    def refine(vals, i):
        left, mid, right = vals[(i - 1) % len(vals)], vals[i], vals[(i + 1) % len(vals)]
        denom = left - 2 * mid + right
        return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5)) if denom < 0 else 0.0

    sx = wrap(px + refine(r[py, :], px), w)
    sy = wrap(py + refine(r[:, px], py), h)
    return float(sx), float(sy)


def estimate_zoom(v1: np.ndarray, v2: np.ndarray, size: int = 128) -> float:
    """Scale search about the common centre: magnification from view 1 to view 2."""
    g1, g2 = _shrink(grey(v1), size), _shrink(grey(v2), size)
    x, y = _grid(size)

    def score(z: float) -> float:
        if z >= 1:  # every view-2 pixel comes from inside view 1
            vals, _ = _sample(g1, y / z + (size - 1) / 2, x / z + (size - 1) / 2)
            return _ncc(g2.ravel(), vals)
        vals, _ = _sample(g2, y * z + (size - 1) / 2, x * z + (size - 1) / 2)
        return _ncc(g1.ravel(), vals)

    coarse = max(np.geomspace(1 / 3.6, 3.6, 121), key=score)
    return float(max(np.geomspace(coarse / 1.03, coarse * 1.03, 25), key=score))


# ============================================================================ structure files


@dataclass
class Atoms:
    elements: list[str]
    xyz: np.ndarray
    bonds: list[tuple[int, int]]
    names: list[str]
    residue: list[tuple[str, int, str]]  # (chain, number, residue name) per atom
    charges: list[int]

    @property
    def heavy(self) -> np.ndarray:
        return np.array([e != "H" for e in self.elements])


def read_sdf(path: Path) -> Atoms:
    """First record of a V2000 molfile/SDF, read by hand."""
    lines = Path(path).read_text().splitlines()
    counts = lines[3]
    n_atoms, n_bonds = int(counts[0:3]), int(counts[3:6])
    elements, xyz, charges = [], [], []
    for line in lines[4 : 4 + n_atoms]:
        xyz.append([float(line[0:10]), float(line[10:20]), float(line[20:30])])
        elements.append(line[31:34].strip())
        code = int(line[36:39]) if line[36:39].strip() else 0
        charges.append({0: 0, 1: 3, 2: 2, 3: 1, 5: -1, 6: -2, 7: -3}.get(code, 0))
    bonds = []
    for line in lines[4 + n_atoms : 4 + n_atoms + n_bonds]:
        bonds.append((int(line[0:3]) - 1, int(line[3:6]) - 1))
    for line in lines[4 + n_atoms + n_bonds :]:
        if line.startswith("M  CHG"):
            parts = line.split()[3:]
            for k in range(0, len(parts), 2):
                charges[int(parts[k]) - 1] = int(parts[k + 1])
    n = len(elements)
    return Atoms(elements, np.array(xyz), bonds, [""] * n, [("", 0, "LIG")] * n, charges)


def read_mol2(path: Path) -> Atoms:
    section = ""
    elements, xyz, bonds = [], [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("@<TRIPOS>"):
            section = line[9:].strip()
            continue
        parts = line.split()
        if section == "ATOM" and len(parts) >= 6:
            xyz.append([float(parts[2]), float(parts[3]), float(parts[4])])
            elements.append(parts[5].split(".")[0])
        elif section == "BOND" and len(parts) >= 4:
            bonds.append((int(parts[1]) - 1, int(parts[2]) - 1))
    n = len(elements)
    return Atoms(elements, np.array(xyz), bonds, [""] * n, [("", 0, "LIG")] * n, [0] * n)


def read_ligand(path: Path) -> Atoms:
    return read_mol2(path) if Path(path).suffix == ".mol2" else read_sdf(path)


def read_pdb(path: Path) -> Atoms:
    elements, xyz, names, residue = [], [], [], []
    for line in Path(path).read_text().splitlines():
        if not line.startswith(("ATOM", "HETATM")):
            continue
        names.append(line[12:16].strip())
        residue.append((line[21], int(line[22:26]), line[17:20].strip()))
        xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
        element = line[76:78].strip() or line[12:16].strip()[0]
        elements.append(element.capitalize())
    n = len(elements)
    xyz_arr = np.array(xyz)
    # covalent bonds by distance within a residue
    tree = cKDTree(xyz_arr)
    radius = {"H": 0.31, "C": 0.76, "N": 0.71, "O": 0.66, "S": 1.05}
    bonds = []
    for i, j in tree.query_pairs(2.0):
        if residue[i] != residue[j]:
            continue
        limit = radius.get(elements[i], 0.8) + radius.get(elements[j], 0.8) + 0.4
        if np.linalg.norm(xyz_arr[i] - xyz_arr[j]) <= limit:
            bonds.append((i, j))
    return Atoms(elements, xyz_arr, bonds, names, residue, [0] * n)


def residue_label(res: tuple[str, int, str]) -> str:
    return f"{res[2]} {res[1]}"


def min_distance_by_residue(protein: Atoms, ligand: Atoms) -> dict[str, float]:
    tree = cKDTree(ligand.xyz[ligand.heavy])
    d, _ = tree.query(protein.xyz)
    out: dict[str, float] = {}
    for i, dist in enumerate(d):
        if protein.elements[i] == "H":
            continue
        label = residue_label(protein.residue[i])
        out[label] = min(out.get(label, np.inf), float(dist))
    return out


def contact_midpoints(protein: Atoms, ligand: Atoms, label: str, cutoff: float) -> np.ndarray:
    lig_idx = np.flatnonzero(ligand.heavy)
    tree = cKDTree(ligand.xyz[lig_idx])
    mids = []
    for i in range(len(protein.elements)):
        if protein.elements[i] == "H" or residue_label(protein.residue[i]) != label:
            continue
        for j in tree.query_ball_point(protein.xyz[i], cutoff):
            mids.append((protein.xyz[i] + ligand.xyz[lig_idx[j]]) / 2)
    return np.array(mids)


def _neighbours(atoms: Atoms) -> list[set[int]]:
    nb = [set() for _ in atoms.elements]
    for i, j in atoms.bonds:
        nb[i].add(j)
        nb[j].add(i)
    return nb


def _donors_acceptors(atoms: Atoms):
    nb = _neighbours(atoms)
    donors = []  # (donor, hydrogen)
    acceptors = []
    for i, e in enumerate(atoms.elements):
        hs = [j for j in nb[i] if atoms.elements[j] == "H"]
        if e in ("N", "O"):
            donors.extend((i, h) for h in hs)
        heavy_degree = sum(1 for j in nb[i] if atoms.elements[j] != "H")
        if e == "O" or (e == "N" and not hs and heavy_degree <= 2 and atoms.charges[i] <= 0):
            acceptors.append(i)
    return donors, acceptors


def hbond_residues(
    protein: Atoms, ligand: Atoms, max_distance: float = 3.5, min_angle: float = 120.0
) -> dict[str, list[tuple[float, float]]]:
    """Residue label -> [(D–A distance, D–H···A angle)] of its hydrogen bonds with the ligand."""
    out: dict[str, list[tuple[float, float]]] = {}
    for d_atoms, a_atoms, side in ((ligand, protein, "ligand"), (protein, ligand, "protein")):
        donors, _ = _donors_acceptors(d_atoms)
        _, acceptors = _donors_acceptors(a_atoms)
        if not donors or not acceptors:
            continue
        tree = cKDTree(a_atoms.xyz[acceptors])
        for d, h in donors:
            for k in tree.query_ball_point(d_atoms.xyz[d], max_distance):
                a = acceptors[k]
                u = d_atoms.xyz[d] - d_atoms.xyz[h]
                v = a_atoms.xyz[a] - d_atoms.xyz[h]
                cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
                angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
                if angle >= min_angle:
                    res = protein.residue[a] if side == "ligand" else protein.residue[d]
                    dist = float(np.linalg.norm(d_atoms.xyz[d] - a_atoms.xyz[a]))
                    out.setdefault(residue_label(res), []).append((dist, angle))
    return out


# ============================================================================ molecule views

CPK_HEAVY = {
    "C": (144, 144, 144),
    "N": (48, 80, 248),
    "O": (255, 13, 13),
    "S": (255, 255, 48),
    "F": (144, 224, 80),
    "Cl": (31, 240, 31),
}


def project(xyz: np.ndarray, cam: dict) -> np.ndarray:
    """Pixel x, pixel y (down), depth, per the documented camera convention."""
    R = np.array(cam["rotation"])
    c = (xyz - np.array(cam["centre"])) @ R.T
    w, h = cam["size"]
    ox, oy = cam["offset"]
    s = cam["scale"]
    return np.stack([w / 2 + ox + s * c[:, 0], h / 2 + oy - s * c[:, 1], c[:, 2]], axis=1)


def colour_match(
    panel: np.ndarray,
    pix: np.ndarray,
    elements: list[str],
    scale: float,
    *,
    bonds: list[tuple[int, int]] = (),
    others: np.ndarray | None = None,
    palette: dict | None = None,
) -> float:
    """Share of heavy atoms whose pixel at the predicted centre has the atom's CPK colour
    (nearest among the palette and white, allowing up to 25 % fog toward white). Atoms that
    another atom or a bond in front could hide (a ball of radius ≤ 0.5 Å, a stick of radius
    ≤ 0.2 Å, at `scale` pixels per Å) are left out."""
    palette = palette or CPK_HEAVY
    names = [*palette, "bg"]
    refs = np.array([*palette.values(), (255, 255, 255)], dtype=float)
    everyone = pix if others is None else np.vstack([pix, others])
    h, w = panel.shape[:2]
    hits = total = 0
    for i, e in enumerate(elements):
        if e not in palette:
            continue
        x, y, z = pix[i]
        if not (0 <= x < w and 0 <= y < h):
            total += 1  # predicted outside the panel: a miss
            continue
        near = np.hypot(everyone[:, 0] - x, everyone[:, 1] - y) < 0.5 * scale + 1.5
        near[i] = False
        if (near & (everyone[:, 2] > z - 0.05)).any():
            continue
        hidden = False
        for a, b in bonds:
            if i in (a, b):
                continue
            pa, pb = pix[a], pix[b]
            seg = pb[:2] - pa[:2]
            t = np.clip(np.dot([x, y] - pa[:2], seg) / max(np.dot(seg, seg), 1e-9), 0, 1)
            closest = pa + t * (pb - pa)
            if (
                np.hypot(closest[0] - x, closest[1] - y) < 0.2 * scale + 1.5
                and closest[2] > z - 0.3
            ):
                hidden = True
                break
        if hidden:
            continue
        total += 1
        rgb = panel[int(y), int(x)]
        best = min(
            (float(np.linalg.norm(rgb - (ref + (255 - ref) * f))), name)
            for name, ref in zip(names, refs, strict=True)
            for f in (0.0, 0.1, 0.2, 0.25)
        )[1]
        hits += best == e
    return hits / total if total else 0.0


@dataclass
class MolOption:
    axis: str = ""  # x | y | z
    sign: int = 0  # +1/-1 in the sense described below
    angle: float = 0.0
    move: tuple[float, float] = (0.0, 0.0)  # Å, x right, y up
    zoom: float = 1.0


def parse_mol_option(text: str) -> MolOption:
    m = re.match(r"Rotated (\d+)° (clockwise|counter-clockwise) in the image plane", text)
    if m:
        return MolOption("z", 1 if m.group(2) == "clockwise" else -1, float(m.group(1)))
    m = re.match(r"Rotated (\d+)° about the vertical axis, front moving (right|left)", text)
    if m:
        return MolOption("y", 1 if m.group(2) == "right" else -1, float(m.group(1)))
    m = re.match(r"Rotated (\d+)° about the horizontal axis, top tilting (toward|away from)", text)
    if m:
        return MolOption("x", 1 if m.group(2) == "toward" else -1, float(m.group(1)))
    m = re.match(r"Moved (.+) by ([\d.]+) Å", text)
    if m:
        v = _direction_vector(m.group(1)) * float(m.group(2))
        return MolOption(move=(float(v[0]), float(-v[1])))  # words are y-down; camera y is up
    m = re.match(r"Zoomed (in|out) ([\d.]+)×", text)
    f = float(m.group(2))
    return MolOption(zoom=f if m.group(1) == "in" else 1 / f)


def rotation_from_words(opt: MolOption) -> np.ndarray:
    """The camera-frame rotation the words describe, found by testing the described motion:
    clockwise as seen (y up), the front point moving right, the top point moving toward the
    viewer (z toward the viewer)."""
    from scipy.spatial.transform import Rotation

    axis = {"x": [1, 0, 0], "y": [0, 1, 0], "z": [0, 0, 1]}[opt.axis]
    for sign in (1, -1):
        R = Rotation.from_rotvec(np.radians(opt.angle) * sign * np.array(axis)).as_matrix()
        if opt.axis == "z":
            moved = R @ [1, 0, 0]  # a point on the right goes down when turning clockwise
            ok = (moved[1] < 0) == (opt.sign > 0)
        elif opt.axis == "y":
            moved = R @ [0, 0, 1]
            ok = (moved[0] > 0) == (opt.sign > 0)
        else:
            moved = R @ [0, 1, 0]
            ok = (moved[2] > 0) == (opt.sign > 0)
        if ok:
            return R
    raise AssertionError("no rotation matches the words")


def camera_for_option(cam1: dict, opt: MolOption) -> dict:
    cam = json.loads(json.dumps(cam1))
    if opt.axis:
        cam["rotation"] = (rotation_from_words(opt) @ np.array(cam1["rotation"])).tolist()
    cam["offset"] = [
        cam1["offset"][0] + opt.move[0] * cam1["scale"],
        cam1["offset"][1] - opt.move[1] * cam1["scale"],
    ]
    cam["scale"] = cam1["scale"] * opt.zoom
    return cam


def foreground(panel: np.ndarray, bottom_skip: int = 0) -> np.ndarray:
    mask = (255 - panel).max(axis=2) > 40
    mask[:3, :] = mask[-3:, :] = mask[:, :3] = mask[:, -3:] = False
    if bottom_skip:
        mask[-bottom_skip:, :] = False
    return mask


VDW = {"H": 1.20, "C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80, "F": 1.47, "Cl": 1.75}


def silhouette_score(
    panel: np.ndarray,
    pix: np.ndarray,
    elements: list[str],
    bonds: list[tuple[int, int]],
    scale: float,
    bottom_skip: int = 0,
) -> float:
    """Agreement of the panel's drawn pixels with balls (0.23 × van der Waals radius) and
    sticks at the predicted positions: precision (predicted heavy-atom discs that are drawn)
    times recall (drawn pixels that some predicted ball or stick explains)."""
    fg = foreground(panel, bottom_skip)
    h, w = fg.shape
    covered = np.zeros_like(fg)
    core = np.zeros_like(fg)

    def paint(mask, x0, y0, x1, y1, inside):
        xa, ya = max(int(x0), 0), max(int(y0), 0)
        xb, yb = min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)
        if xa >= xb or ya >= yb:
            return
        yy, xx = np.mgrid[ya:yb, xa:xb] + 0.5
        mask[ya:yb, xa:xb] |= inside(xx, yy)

    def disc(mask, x, y, r):
        paint(mask, x - r, y - r, x + r, y + r, lambda xx, yy: np.hypot(xx - x, yy - y) <= r)

    for i, e in enumerate(elements):
        r = 0.23 * VDW.get(e, 1.7) * scale
        disc(covered, pix[i, 0], pix[i, 1], r + 2.0)
        if e != "H":
            disc(core, pix[i, 0], pix[i, 1], 0.7 * r)
    half = 0.2 * scale + 2.0
    for a, b in bonds:
        pa, pb = pix[a, :2], pix[b, :2]
        seg = pb - pa
        length2 = max(float(seg @ seg), 1e-9)

        def on_stick(xx, yy, pa=pa, seg=seg, length2=length2):
            t = np.clip(((xx - pa[0]) * seg[0] + (yy - pa[1]) * seg[1]) / length2, 0, 1)
            return np.hypot(xx - (pa[0] + t * seg[0]), yy - (pa[1] + t * seg[1])) <= half

        lo, hi = np.minimum(pa, pb) - half, np.maximum(pa, pb) + half
        paint(covered, lo[0], lo[1], hi[0], hi[1], on_stick)
    if bottom_skip:
        core[-bottom_skip:, :] = False
    precision = (core & fg).sum() / max(core.sum(), 1)
    recall = (covered & fg).sum() / max(fg.sum(), 1)
    return float(precision * recall)
