"""A model-free image descriptor: colour, stain and texture statistics of a figure.

    desc = PixelDescriptor()
    vectors = desc.encode_images([jpeg_bytes, "fig.png"], on_error="nan")  # (N, 60), unit rows

No weights, no download: PIL + numpy on a copy of the image shrunk to at most 128 px on
its longer side. Deterministic (the same bytes give the same vector on any machine, up to
float rounding) and independent of the other images (no corpus statistics), so a stored
vector never goes stale. `MODEL_ID` names the descriptor's version; change it whenever the
features change, so that the embed step (which resumes per model id) computes them again.

What it captures (60 dimensions, each block mapped to a fixed, roughly centred range and
weighted, then the whole vector L2-normalised):

* hue histogram weighted by saturation (16 bins; grey images give ~0 here), saturation
  and value histograms (8 bins each), as square roots (Hellinger);
* mean and spread of CIELAB L*, a*, b* (a*, b* are 0 for neutral grey);
* gradient-magnitude histogram (8 log-spaced bins), edge density at two thresholds,
  fine and coarse Laplacian energy (texture scale);
* shares of dark background, bright (white) background, near-grey pixels, brown
  (DAB-like chromogen) pixels and pink/purple (H&E-like) pixels; colourfulness
  (Hasler & Süsstrunk);
* the background: its lightness (median L*) and the shares of pixels at it, well above it
  (bright objects on dark) and well below it (dark objects on light).

So it tells apart imaging looks: a brightfield H&E section from a DAB immunostain, from
grey-scale phase images, from fluorescence on a black background. It is NOT a substitute
for a CLIP image embedding: it knows nothing of what is depicted (no cells, organs,
structures or semantics), cannot count or find panels, arrows or labels, and two different
specimens imaged the same way look alike to it. Multi-panel figures are described as one
image. Single-channel intensity images are its weak spot: on the 32 sample figures the
nearest neighbour has the same imaging modality for 25 (tests/test_pixel.py), and the misses
are mostly grey-scale phase images and nuclear-stain fluorescence taken for each other.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ID = "pixel-stats-v1"
SIZE = 128  # longer side of the image the statistics are computed on

HUE_BINS, SAT_BINS, VAL_BINS, GRAD_BINS = 16, 8, 8, 8
DIM = HUE_BINS + SAT_BINS + VAL_BINS + 6 + GRAD_BINS + 2 + 2 + 5 + 1 + 4  # = 60

# Relative weight of each block in the final vector (before the L2 normalisation).
WEIGHTS = {
    "hue": 1.0,
    "saturation": 0.7,
    "value": 0.7,
    "lab": 1.0,
    "gradient": 0.6,
    "edges": 0.5,
    "shares": 1.0,
    "colourfulness": 0.5,
    "background": 1.0,
}

ImageInput = bytes | bytearray | memoryview | str | Path


def load_image(item: Any, size: int = SIZE) -> Any:
    """A PIL RGB image from bytes or a path, shrunk to at most `size` px on its longer side
    (JPEGs decoded at a reduced DCT scale first). Raises on an undecodable image."""
    from PIL import Image

    if isinstance(item, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(item)))
    else:
        image = Image.open(item)
    if image.format == "JPEG":
        image.draft("RGB", (size * 2, size * 2))
    image.load()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(base, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    scale = size / max(image.size)
    if scale < 1:
        new = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(new, Image.Resampling.BOX)
    return image


def _hist(values: np.ndarray, bins: int, lo: float, hi: float, weights=None) -> np.ndarray:
    h, _ = np.histogram(values, bins=bins, range=(lo, hi), weights=weights)
    return h.astype(np.float64)


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in [0, 1), saturation and value in [0, 1] of float RGB in [0, 1]."""
    mx = rgb.max(-1)
    mn = rgb.min(-1)
    delta = mx - mn
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4)
    )
    hue = np.where(delta > 0, hue / 6.0, 0.0) % 1.0
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, sat, mx


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of float sRGB in [0, 1]."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def _gradients(grey: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (grey in [0, 1]); edges replicated."""
    p = np.pad(grey, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy) / 8.0


def _laplacian_energy(grey: np.ndarray) -> float:
    p = np.pad(grey, 1, mode="edge")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    return float(np.sqrt(np.mean(lap**2)))


def _block(x: np.ndarray, name: str) -> np.ndarray:
    """Scale a block so that its weight does not grow with its number of dimensions."""
    return WEIGHTS[name] * np.asarray(x, np.float64) / np.sqrt(max(len(x), 1))


def _colour_histograms(
    hue: np.ndarray, sat: np.ndarray, val: np.ndarray, n: int
) -> list[np.ndarray]:
    # Square roots of the shares (Hellinger), hue weighted by saturation over all pixels, so
    # grey images have an (almost) empty hue block.
    return [
        np.sqrt(_hist(hue, HUE_BINS, 0.0, 1.0, weights=sat) / n),
        np.sqrt(_hist(sat, SAT_BINS, 0.0, 1.0 + 1e-9) / n) - np.sqrt(1 / SAT_BINS),
        np.sqrt(_hist(val, VAL_BINS, 0.0, 1.0 + 1e-9) / n) - np.sqrt(1 / VAL_BINS),
    ]


def _lab_stats(lab: np.ndarray) -> np.ndarray:
    """Mean and spread of L*, a*, b*, centred on mid-grey / neutral."""
    flat = lab.reshape(-1, 3)
    mean, std = flat.mean(0), flat.std(0)
    return np.array(
        [
            (mean[0] - 50) / 50,
            mean[1] / 30,
            mean[2] / 30,
            std[0] / 25 - 0.5,
            std[1] / 15,
            std[2] / 15,
        ]
    )


def _texture(grey: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(gradient histogram, edges): gradient magnitudes in log-spaced bins; edge density,
    and Laplacian energy at the working scale and at half of it."""
    grad = _gradients(grey)
    edges_lo = np.logspace(-3, 0, GRAD_BINS + 1)
    grad_h = np.histogram(np.clip(grad, 1e-3, 1.0), bins=edges_lo)[0] / n
    grad_h = np.sqrt(grad_h) - np.sqrt(1 / GRAD_BINS)
    edge_f = np.array([np.mean(grad > 0.05), np.mean(grad > 0.15)])
    edge_f = 2 * np.sqrt(edge_f) - 1
    h2, w2 = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    coarse = grey[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2).mean((1, 3)) if h2 and w2 else grey
    lap_f = np.array([_laplacian_energy(grey), _laplacian_energy(coarse)])
    lap_f = np.log10(np.maximum(lap_f, 1e-4)) / 2 + 1  # 0.01 -> 0, 1 -> 1
    return grad_h, np.concatenate([edge_f, lap_f])


def _pixel_shares(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Shares of telling pixel kinds (as 2 sqrt(p) - 1: 0 % -> -1, 25 % -> 0, 100 % -> 1)."""
    hue_deg = hue * 360
    dark = np.mean(val < 0.15)
    bright = np.mean((val > 0.88) & (sat < 0.12))
    near_grey = np.mean(sat < 0.08)
    brown = np.mean((hue_deg >= 10) & (hue_deg <= 50) & (sat > 0.25) & (val > 0.15) & (val < 0.85))
    pink_purple = np.mean(
        ((hue_deg >= 260) | (hue_deg <= 8)) & (sat > 0.12) & (val > 0.25) & (val < 0.98)
    )
    return 2 * np.sqrt(np.array([dark, bright, near_grey, brown, pink_purple])) - 1


def _colourfulness(rgb: np.ndarray) -> np.ndarray:
    """Hasler & Süsstrunk (2003) on 0..255 RGB; ~0 grey, ~100+ very colourful."""
    rg = (rgb[..., 0] - rgb[..., 1]) * 255
    yb = (0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]) * 255
    colourful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    return np.array([np.log1p(colourful) / np.log1p(50.0) - 1])


def _background(grey: np.ndarray) -> np.ndarray:
    """The background's lightness (the median L*, as most of a micrograph is background) and
    how much of the image sits at it, above it (bright objects on dark: fluorescence) or
    below it (dark objects on light: brightfield)."""
    level = float(np.median(grey))
    return np.array(
        [
            (level - 0.5) * 2,
            2 * np.sqrt(np.mean(np.abs(grey - level) < 0.05)) - 1,
            2 * np.sqrt(np.mean(grey > level + 0.15)) - 1,
            2 * np.sqrt(np.mean(grey < level - 0.15)) - 1,
        ]
    )


def describe(image: Any) -> np.ndarray:
    """The (unnormalised) descriptor of a PIL RGB image; see the module doc."""
    rgb = np.asarray(image, dtype=np.float64)[..., :3] / 255.0
    n = rgb.shape[0] * rgb.shape[1]
    hue, sat, val = _hsv(rgb)
    lab = _lab(rgb)
    grey = lab[..., 0] / 100.0
    hue_h, sat_h, val_h = _colour_histograms(hue, sat, val, n)
    grad_h, edges = _texture(grey, n)
    return np.concatenate(
        [
            _block(hue_h, "hue"),
            _block(sat_h, "saturation"),
            _block(val_h, "value"),
            _block(_lab_stats(lab), "lab"),
            _block(grad_h, "gradient"),
            _block(edges, "edges"),
            _block(_pixel_shares(hue, sat, val), "shares"),
            _block(_colourfulness(rgb), "colourfulness"),
            _block(_background(grey), "background"),
        ]
    )


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (
        (vector / norm).astype(np.float32) if norm > 0 else np.full(len(vector), np.nan, np.float32)
    )


class PixelDescriptor:
    """`encode_images` like an image encoder, with no model behind it (see the module doc)."""

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, size: int = SIZE) -> None:
        self.size = size

    def describe(self, item: ImageInput) -> np.ndarray:
        """The unit descriptor of one image (bytes or path); raises if it cannot be decoded."""
        return unit(describe(load_image(item, self.size)))

    def encode_images(self, images: Sequence[ImageInput], *, on_error: str = "raise") -> np.ndarray:
        """(N, DIM) float32 unit rows; an undecodable image raises, or with
        on_error="nan" gives a NaN row (the embed step counts it as failed)."""
        out = np.full((len(images), DIM), np.nan, np.float32)
        for i, item in enumerate(images):
            try:
                out[i] = self.describe(item)
            except Exception as exc:
                if on_error != "nan":
                    raise ValueError(f"image {i} cannot be decoded: {exc}") from exc
        return out
