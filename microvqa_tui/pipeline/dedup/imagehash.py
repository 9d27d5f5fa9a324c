"""Perceptual image hashes (NumPy + Pillow only), robust to resizing, re-encoding and crops.

Per image we hash a set of *windows*: the whole image, plus centred and corner-anchored
crops at several scales (`WINDOW_SCALES` × `WINDOW_ANCHORS`²). Each window gets a 64-bit
DCT pHash (32×32 grey → 2-D DCT → the 8×8 lowest frequencies vs their median) and a 64-bit
dHash (9×8 grey → sign of horizontal gradients); together a 128-bit code.

Two images are near-duplicates when the whole-image code of one matches *some* window of the
other: the whole-image window catches exact, resized and re-encoded copies, the crop windows
catch a copy that was cropped: trimmed borders, or a part keeping ≥ 60% of each side that is
centred or anchored at a corner or an edge (8 scales 0.95…0.6 × 3×3 anchors = 73 windows).
Crops far from those anchors (an arbitrary off-centre panel) drift out of reach; CLIP
embeddings, when stored, cover those. Codes are compared as ±1 vectors, so the Hamming
distance is a dot product and the search is the same blocked matrix product as for
embeddings (GPU when there is one): similarity = fraction of the 128 bits that agree.

Flat windows (almost no contrast) carry no information and are skipped, so blank regions
never match each other.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HASH_BITS = 128  # 64 pHash + 64 dHash
WINDOW_SCALES = (0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
WINDOW_ANCHORS = (0.0, 0.5, 1.0)  # left/centre/right (and top/centre/bottom)
WORK_SIDE = 256  # images are first reduced so their longer side is at most this
MIN_WINDOW_STD = 2.0  # grey-level standard deviation (0-255) below which a window is flat
HASH_VERSION = "phash64+dhash64/v1"

Image.MAX_IMAGE_PIXELS = None  # ingest already refused decompression bombs


def windows() -> list[tuple[float, float, float]]:
    """(scale, x anchor, y anchor) of every window; the first is the whole image."""
    result = [(1.0, 0.5, 0.5)]
    for scale in WINDOW_SCALES:
        for ay in WINDOW_ANCHORS:
            for ax in WINDOW_ANCHORS:
                result.append((scale, ax, ay))
    return result


N_WINDOWS = len(windows())


@cache
def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float64)


def to_grey(image: Image.Image) -> np.ndarray:
    """A float32 grey array in 0..255 for any Pillow mode (16-bit and float images are
    rescaled by their own range rather than clipped)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(image, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr.mean(axis=2)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        grey = Image.fromarray(arr.astype(np.float32), mode="F")
    else:
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        grey = image.convert("L")
    if max(grey.size) > WORK_SIDE:
        ratio = WORK_SIDE / max(grey.size)
        size = (max(1, round(grey.width * ratio)), max(1, round(grey.height * ratio)))
        grey = grey.resize(size, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(
        Image.fromarray(arr, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float64
    )


def window_codes(grey: np.ndarray, crops: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(codes, valid) for every window: codes (N_WINDOWS, 128) bool, valid (N_WINDOWS,) bool.
    Without `crops` only window 0 (the whole image) is hashed."""
    h, w = grey.shape
    dct = _dct_matrix(32)
    codes = np.zeros((N_WINDOWS, HASH_BITS), dtype=bool)
    valid = np.zeros(N_WINDOWS, dtype=bool)
    for i, (scale, ax, ay) in enumerate(windows()):
        if i and not crops:
            break
        ww, wh = max(1, round(w * scale)), max(1, round(h * scale))
        x0 = round((w - ww) * ax)
        y0 = round((h - wh) * ay)
        crop = np.ascontiguousarray(grey[y0 : y0 + wh, x0 : x0 + ww])
        if crop.size < 16:
            continue
        small = _resize(crop, (32, 32))
        if small.std() < MIN_WINDOW_STD:
            continue
        freq = dct @ small @ dct.T
        low = freq[:8, :8].ravel()
        phash = low > np.median(low[1:])
        tiny = _resize(crop, (9, 8))
        dhash = (tiny[:, 1:] > tiny[:, :-1]).ravel()
        codes[i, :64] = phash
        codes[i, 64:] = dhash
        valid[i] = True
    return codes, valid


def image_codes(data: bytes | Path | str, crops: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Window codes of an image given as bytes or a path; raises on undecodable data."""
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else str(data)
    with Image.open(source) as image:
        image.seek(0)  # first frame of multi-page TIFFs
        image.load()
        return window_codes(to_grey(image), crops)


def concat_tables(tables: list[HashTable], sizes: list[int]) -> HashTable:
    """One table from per-batch tables; `sizes[i]` images were in batch i (owners shift)."""
    offset = 0
    codes, owners, wins, failed = [], [], [], []
    for table, size in zip(tables, sizes, strict=True):
        codes.append(table.codes)
        owners.append(table.owner + offset)
        wins.append(table.window)
        failed.extend(i + offset for i in table.failed)
        offset += size
    if not codes:
        return HashTable(
            np.zeros((0, HASH_BITS), bool), np.zeros(0, np.int64), np.zeros(0, np.int64), []
        )
    return HashTable(np.concatenate(codes), np.concatenate(owners), np.concatenate(wins), failed)


def _rows_of(table: HashTable, image: int) -> slice:
    # Owners are non-decreasing (images are hashed and concatenated in order).
    lo = int(np.searchsorted(table.owner, image, side="left"))
    hi = int(np.searchsorted(table.owner, image, side="right"))
    return slice(lo, hi)


def pair_similarity(table: HashTable, a: int, b: int) -> float:
    """Best fraction of agreeing bits between the whole of one image and any window of the
    other (both ways); 0.0 when either has no valid whole-image code."""
    best = 0.0
    for x, y in ((a, b), (b, a)):
        rows_x, rows_y = _rows_of(table, x), _rows_of(table, y)
        if rows_x.stop == rows_x.start or table.window[rows_x.start] != 0:
            continue
        wy = table.codes[rows_y]
        if len(wy):
            best = max(best, float((wy == table.codes[rows_x.start]).mean(axis=1).max()))
    return best


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero(np.asarray(a, bool) != np.asarray(b, bool)))


def to_signed(codes: np.ndarray) -> np.ndarray:
    """Bool codes as ±1 float32 rows: dot(a, b) = bits − 2·hamming(a, b)."""
    return np.where(codes, 1.0, -1.0).astype(np.float32)


def similarity_from_dot(dot: np.ndarray | float, bits: int = HASH_BITS) -> np.ndarray | float:
    """Fraction of agreeing bits from the ±1 dot product (normalised vectors: dot·bits)."""
    return (1.0 + np.asarray(dot)) / 2.0


def cosine_threshold(similarity: float) -> float:
    """The ±1-vector cosine equal to a fraction-of-agreeing-bits threshold."""
    return 2.0 * similarity - 1.0


@dataclass
class HashTable:
    """Codes of many images: one row per valid window, `owner[r]` the image index."""

    codes: np.ndarray  # (rows, 128) bool
    owner: np.ndarray  # (rows,) int64 image index
    window: np.ndarray  # (rows,) int64 window number (0 = whole image)
    failed: list[int]  # images that could not be decoded

    def whole(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes, owner) of the whole-image windows only."""
        mask = self.window == 0
        return self.codes[mask], self.owner[mask]


def hash_images(
    sources: Iterable[bytes | Path | str | None],
    *,
    workers: int = 0,
    crops: bool = True,
    on_done=None,
) -> HashTable:
    """Hash many images on a thread pool (Pillow releases the GIL while decoding/resizing).
    `on_done(n)` is called as images finish; None or undecodable sources go to `failed`."""
    import os

    items = list(sources)
    workers = workers or os.cpu_count() or 1

    def one(item):
        if item is None:
            return None
        try:
            return image_codes(item, crops)
        except Exception:
            return None

    codes_list: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    wins: list[np.ndarray] = []
    failed: list[int] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, result in enumerate(pool.map(one, items, chunksize=8)):
            if result is None:
                failed.append(index)
            else:
                codes, valid = result
                rows = np.nonzero(valid)[0]
                codes_list.append(codes[rows])
                owners.append(np.full(len(rows), index, np.int64))
                wins.append(rows.astype(np.int64))
            if on_done is not None:
                on_done(1)
    if codes_list:
        return HashTable(
            np.concatenate(codes_list), np.concatenate(owners), np.concatenate(wins), failed
        )
    return HashTable(
        np.zeros((0, HASH_BITS), bool), np.zeros(0, np.int64), np.zeros(0, np.int64), failed
    )
