"""Pixels: decoding store figures, sampling views by an affine map, composing and encoding.

Coordinate conventions (used by every micrograph family and written into `params_json`):

* Continuous image coordinates: x right, y DOWN, pixel `i` covers [i, i+1) (Pillow's).
* A view is `ViewGeom(cx, cy, phi, a)`: a square of `size` pixels whose centre sits at source
  point (cx, cy), whose sampling grid is turned by `phi` degrees clockwise, and which takes
  `a` source pixels per view pixel. View point q (offset from the view centre, y down) shows
  source point  X = c + a · R(phi) · q,  with R(phi) = [[cos, -sin], [sin, cos]] — a clockwise
  rotation on screen because y points down.
* The content of a view whose grid is turned by +phi appears turned by -phi.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_GAP = 16
PANEL_HEADER = 30
PANEL_MARGIN = 8
BACKGROUND = (255, 255, 255)
PNG_COMPRESS_LEVEL = 6
JPEG_QUALITY = 95


def rot_cw(phi_deg: float) -> np.ndarray:
    """2×2 matrix that turns a vector `phi_deg` clockwise on screen (y down)."""
    r = math.radians(phi_deg)
    c, s = math.cos(r), math.sin(r)
    return np.array([[c, -s], [s, c]])


@dataclass(frozen=True)
class ViewGeom:
    cx: float
    cy: float
    phi: float  # grid rotation, degrees clockwise
    a: float  # source pixels per view pixel

    def affine(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(A, off): source point X = A @ p + off for view point p (continuous, y down)."""
        A = self.a * rot_cw(self.phi)
        off = np.array([self.cx, self.cy]) - A @ np.array([size / 2, size / 2])
        return A, off

    def corners(self, size: int) -> np.ndarray:
        A, off = self.affine(size)
        pts = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=float)
        return pts @ A.T + off

    def inside(self, width: int, height: int, size: int, margin: float = 2.0) -> bool:
        c = self.corners(size)
        return bool(
            (c[:, 0] >= margin).all()
            and (c[:, 0] <= width - margin).all()
            and (c[:, 1] >= margin).all()
            and (c[:, 1] <= height - margin).all()
        )

    def to_params(self) -> dict[str, float]:
        return {
            "cx": round(self.cx, 4),
            "cy": round(self.cy, 4),
            "phi": round(self.phi, 4),
            "a": round(self.a, 6),
        }


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: 16-bit/float greys are stretched between the 0.5th and
    99.5th percentiles, transparency is flattened on white."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = np.percentile(arr, [0.5, 99.5])
        scaled = np.clip((arr - lo) / max(hi - lo, 1e-9), 0, 1) * 255
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB") if mode != "RGB" else image


def decode_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return to_rgb(image)


class SourceImage:
    """A decoded figure with a lazily built pyramid (box-reduced copies) for anti-aliased
    down-sampling: a view taking `a` ≥ 2 source pixels per pixel samples a reduced copy."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.width, self.height = image.size
        self._reduced: dict[int, Image.Image] = {1: image}

    def level(self, factor: int) -> Image.Image:
        if factor not in self._reduced:
            self._reduced[factor] = self.image.reduce(factor)
        return self._reduced[factor]

    def sample(self, view: ViewGeom, size: int) -> Image.Image:
        A, off = view.affine(size)
        factor = int(view.a) if view.a >= 2 else 1
        source = self.level(factor)
        # Reduced copy: pixel centre i+0.5 of the copy covers source [k·i, k·(i+1)), so
        # continuous coordinates simply divide by k.
        A, off = A / factor, off / factor
        data = (A[0, 0], A[0, 1], off[0], A[1, 0], A[1, 1], off[1])
        return source.transform((size, size), Image.AFFINE, data, resample=Image.BICUBIC)


def grey(image: Image.Image, size: int | None = None) -> np.ndarray:
    img = image.convert("L")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BOX)
    return np.asarray(img, dtype=np.float64)


def texture_score(image: Image.Image) -> float:
    """Standard deviation of the grey levels (0–255) of a 64-pixel thumbnail: a flat,
    empty or saturated crop scores low and gives no landmarks to compare."""
    return float(grey(image, 64).std())


def texture_coverage(image: Image.Image, tiles: int = 4, min_std: float = 8.0) -> float:
    """Share of the tiles (a `tiles`×`tiles` grid) whose grey levels vary (std ≥ `min_std`):
    a view that is mostly empty background with a few lines scores low, since its few
    landmarks may repeat (panel borders, letters) and make the pair ambiguous."""
    g = grey(image, 16 * tiles)
    return float((g.reshape(tiles, 16, tiles, 16).std(axis=(1, 3)) >= min_std).mean())


def bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample `img` at continuous points (pixel centres at i+0.5); returns values and a mask
    of the points inside the image."""
    h, w = img.shape
    fx, fy = x - 0.5, y - 0.5
    valid = (fx >= 0) & (fx <= w - 1) & (fy >= 0) & (fy <= h - 1)
    fx = np.clip(fx, 0, w - 1.000001)
    fy = np.clip(fy, 0, h - 1.000001)
    x0, y0 = fx.astype(int), fy.astype(int)
    dx, dy = fx - x0, fy - y0
    v = (
        img[y0, x0] * (1 - dx) * (1 - dy)
        + img[y0, x0 + 1] * dx * (1 - dy)
        + img[y0 + 1, x0] * (1 - dx) * dy
        + img[y0 + 1, x0 + 1] * dx * dy
    )
    return v, valid


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


_FONTS: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}


def font(size: int):
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def compose_panels(
    views: list[Image.Image], labels: tuple[str, ...] = ("1", "2")
) -> tuple[Image.Image, list[list[int]]]:
    """Views side by side on white, each under a header with its label; returns the figure
    and each view's box [x0, y0, x1, y1] in it."""
    w = sum(v.width for v in views) + PANEL_GAP * (len(views) - 1) + 2 * PANEL_MARGIN
    h = max(v.height for v in views) + PANEL_HEADER + PANEL_MARGIN
    canvas = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    label_font = font(22)
    boxes: list[list[int]] = []
    x = PANEL_MARGIN
    for view, label in zip(views, labels, strict=True):
        y = PANEL_HEADER
        canvas.paste(view, (x, y))
        boxes.append([x, y, x + view.width, y + view.height])
        draw.text(
            (x + view.width / 2, PANEL_HEADER / 2),
            label,
            fill=(0, 0, 0),
            font=label_font,
            anchor="mm",
        )
        x += view.width + PANEL_GAP
    return canvas, boxes


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image) -> bytes:
    """High-quality JPEG without chroma subsampling: 15-30× faster to write than PNG for
    photographic content, which is what caps the micrograph families' throughput."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def encode(image: Image.Image, fmt: str) -> bytes:
    return encode_png(image) if fmt == "PNG" else encode_jpeg(image)
