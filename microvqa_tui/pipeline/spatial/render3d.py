"""A small off-screen ball-and-stick renderer (numpy + Pillow; no display, no OpenGL).

Orthographic projection; painter's algorithm over atoms (discs) and half-bonds (thick
lines), back to front; CPK colours with a light depth fog; 2× super-sampling for smooth
edges. Camera frame: x right, y UP, z toward the viewer. A model point X lands at pixel

    p = (W/2 + off_x + s·x_c,  H/2 + off_y − s·y_c),   (x_c, y_c, z_c) = R · (X − centre)

with s the scale in pixels per Å — the exact mapping recorded in each item's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from microvqa_tui.pipeline.spatial.chem import PROTEIN_CARBON, VDW, colour
from microvqa_tui.pipeline.spatial.imaging import font

BACKGROUND = (255, 255, 255)
FRAME = (190, 190, 190)
SUPERSAMPLE = 2
FOG = 0.25  # the farthest atoms are blended this much toward the background


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray  # 3×3, model -> camera
    centre: np.ndarray  # model point shown at the panel middle (+ offset)
    scale: float  # pixels per Å
    size: tuple[int, int]
    offset: tuple[float, float] = (0.0, 0.0)  # pixels, y down

    def camera_coords(self, xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(xyz) - self.centre) @ np.asarray(self.rotation).T

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3): pixel x, pixel y (down), depth (toward the viewer, Å)."""
        c = self.camera_coords(xyz)
        w, h = self.size
        return np.stack(
            [
                w / 2 + self.offset[0] + self.scale * c[:, 0],
                h / 2 + self.offset[1] - self.scale * c[:, 1],
                c[:, 2],
            ],
            axis=1,
        )

    def to_params(self) -> dict:
        return {
            "rotation": [[round(float(v), 6) for v in row] for row in np.asarray(self.rotation)],
            "centre": [round(float(v), 4) for v in self.centre],
            "scale": round(float(self.scale), 4),
            "size": list(self.size),
            "offset": [round(float(v), 3) for v in self.offset],
        }


def rounded_rotation(matrix: np.ndarray) -> np.ndarray:
    """A rotation stored with 6 decimals and used exactly as stored (params reproduce it)."""
    return np.round(np.asarray(matrix, dtype=np.float64), 6)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation (from a random unit quaternion)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def axis_rotation(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation about a camera axis (x right, y up, z toward the viewer)."""
    r = math.radians(degrees)
    c, s = math.cos(r), math.sin(r)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass
class Layer:
    """Atoms drawn in one style: a ligand (balls and sticks) or residues (thin sticks)."""

    coords: np.ndarray
    elements: list[str]
    bonds: list[tuple[int, int]]
    ball: float = 0.23  # ball radius as a fraction of the van der Waals radius
    stick: float = 0.13  # stick radius, Å
    carbon: tuple[int, int, int] | None = None  # overrides the CPK carbon colour
    visible: np.ndarray | None = None  # atoms to draw (default: all)

    def colours(self) -> list[tuple[int, int, int]]:
        return [
            self.carbon if (e == "C" and self.carbon is not None) else colour(e)
            for e in self.elements
        ]


def ligand_layer(coords, elements, bonds, visible=None) -> Layer:
    return Layer(np.asarray(coords), list(elements), list(bonds), visible=visible)


def residue_layer(coords, elements, bonds, visible=None) -> Layer:
    return Layer(
        np.asarray(coords),
        list(elements),
        list(bonds),
        ball=0.18,
        stick=0.11,
        carbon=PROTEIN_CARBON,
        visible=visible,
    )


@dataclass
class Label:
    text: str
    xy: tuple[float, float]  # pixel position (final resolution)


@dataclass
class Overlay:
    labels: list[Label] = field(default_factory=list)
    scale_bar_angstrom: float | None = None  # draw a bar of this length (bottom left)
    frame: bool = True


def _mix(c: tuple[int, int, int], target: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(round(a + (b - a) * f) for a, b in zip(c, target, strict=True))  # type: ignore[return-value]


def render(layers: list[Layer], camera: Camera, overlay: Overlay | None = None) -> Image.Image:
    """Draw the layers through `camera`; returns an RGB image of `camera.size`."""
    ss = SUPERSAMPLE
    w, h = camera.size
    canvas = Image.new("RGB", (w * ss, h * ss), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    projected = [camera.project(layer.coords) for layer in layers]
    depths = np.concatenate([p[:, 2] for p in projected]) if projected else np.zeros(1)
    zmin, zmax = float(depths.min()), float(depths.max())
    span = max(zmax - zmin, 1e-6)

    prims: list[tuple[float, int, int, int, int]] = []  # depth, kind, layer, i, j
    for li, (layer, proj) in enumerate(zip(layers, projected, strict=True)):
        visible = layer.visible if layer.visible is not None else np.ones(len(proj), bool)
        for i in np.flatnonzero(visible):
            prims.append((float(proj[i, 2]), 1, li, int(i), -1))
        for i, j in layer.bonds:
            if not (visible[i] and visible[j]):
                continue
            mid = (proj[i, 2] + proj[j, 2]) / 2
            prims.append((min(float(proj[i, 2]), mid) - 1e-3, 0, li, i, j))
            prims.append((min(float(proj[j, 2]), mid) - 1e-3, 0, li, j, i))
    prims.sort()

    colours = [layer.colours() for layer in layers]
    for depth, kind, li, i, j in prims:
        layer, proj = layers[li], projected[li]
        fog = FOG * (zmax - depth) / span
        base = _mix(colours[li][i], BACKGROUND, fog)
        x, y = proj[i, 0] * ss, proj[i, 1] * ss
        if kind == 1:
            r = layer.ball * VDW.get(layer.elements[i], 1.7) * camera.scale * ss
            edge = _mix(base, (0, 0, 0), 0.45)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=edge)
            ri = r * 0.86
            draw.ellipse([x - ri, y - ri, x + ri, y + ri], fill=base)
            hx, hy, hr = x - 0.38 * r, y - 0.38 * r, 0.24 * r
            draw.ellipse(
                [hx - hr, hy - hr, hx + hr, hy + hr], fill=_mix(base, (255, 255, 255), 0.55)
            )
        else:
            xm = (proj[i, 0] + proj[j, 0]) / 2 * ss
            ym = (proj[i, 1] + proj[j, 1]) / 2 * ss
            width = max(1, round(2 * layer.stick * camera.scale * ss))
            draw.line([(x, y), (xm, ym)], fill=_mix(base, (0, 0, 0), 0.45), width=width + 2 * ss)
            draw.line([(x, y), (xm, ym)], fill=base, width=width)

    image = canvas.resize((w, h), Image.LANCZOS) if ss > 1 else canvas
    if overlay is not None:
        _draw_overlay(image, camera, overlay)
    return image


def _draw_overlay(image: Image.Image, camera: Camera, overlay: Overlay) -> None:
    draw = ImageDraw.Draw(image)
    w, h = image.size
    label_font = font(13)
    for label in overlay.labels:
        x = min(max(label.xy[0], 30), w - 30)
        y = min(max(label.xy[1], 10), h - 10)
        draw.text(
            (x, y),
            label.text,
            fill=(0, 0, 0),
            font=label_font,
            anchor="mm",
            stroke_width=3,
            stroke_fill=(255, 255, 255),
        )
    if overlay.scale_bar_angstrom:
        length = overlay.scale_bar_angstrom * camera.scale
        x0, y0 = 10, h - 12
        draw.rectangle([x0, y0 - 3, x0 + length, y0], fill=(0, 0, 0))
        draw.text(
            (x0 + length / 2, y0 - 6),
            f"{overlay.scale_bar_angstrom / 10:g} nm",  # the bundled font has no Å
            fill=(0, 0, 0),
            font=font(12),
            anchor="md",
        )
    if overlay.frame:
        draw.rectangle([0, 0, w - 1, h - 1], outline=FRAME)


def scale_bar_box(camera: Camera, angstrom: float) -> list[int]:
    """Pixels the scale bar and its text may cover (for checks that must ignore it)."""
    h = camera.size[1]
    length = angstrom * camera.scale
    return [0, h - 34, math.ceil(10 + length + 30), h]
