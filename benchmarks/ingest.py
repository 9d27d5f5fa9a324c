"""Ingest throughput and memory: `ingest_source` against a minimal baseline.

    python benchmarks/ingest.py            # 10,000 pairs (+ 2,000 for the memory check)
    python benchmarks/ingest.py --n 3000 --small 1000

Generates N synthetic micrograph-like JPEGs (50–200 KB: textured, noisy crops of rendered
"slides": fluorescence, H&E brightfield, grayscale EM-like) with captions, cached under
--cache, as one Parquet file (Hugging Face image structs, 256-row row groups) and as
WebDataset shards (1,000 samples each, jpg + json). Each case runs in a fresh subprocess
that reports its wall time and its peak RSS (ru_maxrss):

* ours: `ingest_source` into an empty store (validation, content hashing, merge-insert
  batches, captions, run record);
* baseline: only the unavoidable work on the same records: read the bytes, decode each
  image once (same thread pool size, same one-batch look-ahead), one bare LanceDB `add`
  streaming (key, image bytes, caption) batches.

Peak memory should not grow with N: compare the two sizes. Throughput cases run --repeat
times, interleaved, and the fastest run of each is kept (other load on the machine only ever
slows a run down); CPU seconds are printed too, as they are less sensitive to that load.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFilter

from microvqa_tui.config import IngestSettings
from microvqa_tui.ingest import ingest_source
from store import open_store

GENERATOR_VERSION = "v1"
SHARD_SIZE = 1000
ROW_GROUP = 256
BATCH = 256
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

# ---------------------------------------------------------------------- synthetic data
_SLIDES: dict[int, np.ndarray] = {}
SLIDE_H, SLIDE_W = 1500, 2000


def _slide(style: int) -> np.ndarray:
    """A large rendered 'slide' per style; images are crops of it (cached per process)."""
    if style in _SLIDES:
        return _SLIDES[style]
    rng = np.random.default_rng(1000 + style)
    h, w = SLIDE_H, SLIDE_W
    small = (rng.random((h // 40 + 2, w // 40 + 2, 3)) * 255).astype(np.uint8)
    bg = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.float32)
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(1500):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        r, e = rng.integers(6, 28), rng.uniform(0.6, 1.4)
        draw.ellipse([cx - r, cy - r * e, cx + r, cy + r * e], fill=int(rng.integers(120, 255)))
    cells = np.asarray(mask.filter(ImageFilter.GaussianBlur(2.5)), np.float32)[..., None] / 255
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * 11
    if style == 0:  # fluorescence: dark background, green/blue nuclei
        img = 15 + 0.1 * bg + cells * 230 * np.array([0.2, 0.9, 0.4], np.float32) + noise
    elif style == 1:  # H&E brightfield: pink background, purple nuclei
        pink = np.array([235, 190, 215], np.float32) * (0.85 + 0.15 * bg / 255)
        img = pink - cells * np.array([120, 150, 60], np.float32) + noise
    else:  # grayscale EM-like texture
        img = np.repeat(0.6 * bg.mean(axis=2, keepdims=True) + 80 - cells * 90, 3, axis=2)
        img += noise[..., :1] * 1.4
    _SLIDES[style] = np.clip(img, 0, 255).astype(np.uint8)
    return _SLIDES[style]


def micrograph(seed: int) -> bytes:
    """A 480–720 x 400–600 JPEG crop, unique per seed (a random stamp in one corner)."""
    rng = np.random.default_rng(seed)
    style = seed % 3
    slide = _slide(style)
    w, h = int(rng.integers(480, 720)), int(rng.integers(400, 600))
    y, x = int(rng.integers(0, SLIDE_H - h)), int(rng.integers(0, SLIDE_W - w))
    crop = slide[y : y + h, x : x + w].copy()
    crop[:6, :6] = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(crop)
    if style == 2:
        image = image.convert("L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(85, 92)))
    return buffer.getvalue()


_WORDS = {
    "what": ["Confocal micrograph", "Widefield image", "Brightfield micrograph", "TEM image"],
    "of": ["HeLa cells", "mouse kidney sections", "human skin", "zebrafish retina", "yeast"],
    "stain": ["DAPI (blue)", "phalloidin (green)", "anti-tubulin (red)", "H&E", "uranyl acetate"],
    "finding": [
        "Nuclei are enlarged and irregular in the treated condition.",
        "Mitochondria appear fragmented compared with controls.",
        "The basal layer shows crowded cells with dark nuclei.",
        "Arrowheads mark cells in metaphase.",
        "Collagen bundles are disorganised in the mutant.",
    ],
}


def caption_text(seed: int) -> str:
    rng = np.random.default_rng(seed + 7)
    pick = {k: v[int(rng.integers(len(v)))] for k, v in _WORDS.items()}
    sentences = [f"{pick['what']} of {pick['of']} stained with {pick['stain']}."]
    sentences += [_WORDS["finding"][int(i)] for i in rng.integers(0, 5, int(rng.integers(2, 6)))]
    sentences.append(f"Scale bar, {int(rng.integers(5, 200))} µm. Panel {seed}.")
    return " ".join(sentences)


def _make(seed: int) -> tuple[bytes, str]:
    return micrograph(seed), caption_text(seed)


def _records(n: int, workers: int) -> Iterator[tuple[int, bytes, str]]:
    with ProcessPoolExecutor(workers) as pool:
        for i, (data, text) in enumerate(pool.map(_make, range(n), chunksize=64)):
            yield i, data, text


def ensure_data(cache: Path, n: int, workers: int) -> tuple[Path, Path]:
    """Parquet file and shard folder for the first n records (generated once, then cached)."""
    root = cache / GENERATOR_VERSION
    parquet = root / f"pairs-{n}.parquet"
    shards = root / f"wds-{n}"
    done = root / f".done-{n}"
    if done.exists():
        return parquet, shards
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(shards, ignore_errors=True)
    shards.mkdir()
    schema = pa.schema(
        [
            ("image_name", pa.string()),
            ("image", IMAGE_STRUCT),
            ("caption", pa.string()),
            ("pmcid", pa.string()),
            ("license", pa.string()),
        ]
    )
    clock = time.perf_counter()
    sizes = []
    rows: dict[str, list] = {name: [] for name in schema.names}
    tar = None
    with pq.ParquetWriter(parquet, schema) as writer:
        for i, data, text in _records(n, workers):
            sizes.append(len(data))
            key = f"PMC{100000 + i // 4}_fig{i % 4}_{i:06d}"
            rows["image_name"].append(key)
            rows["image"].append({"bytes": data, "path": f"{key}.jpg"})
            rows["caption"].append(text)
            rows["pmcid"].append(f"PMC{100000 + i // 4}")
            rows["license"].append("CC-BY-4.0")
            if len(rows["image"]) == ROW_GROUP:
                writer.write_table(pa.table(rows, schema=schema), row_group_size=ROW_GROUP)
                rows = {name: [] for name in schema.names}
            if i % SHARD_SIZE == 0:
                if tar is not None:
                    tar.close()
                tar = tarfile.open(shards / f"shard-{i // SHARD_SIZE:05d}.tar", "w")  # noqa: SIM115
            meta = json.dumps(
                {
                    "caption": text,
                    "pmcid": f"PMC{100000 + i // 4}",
                    "license": "CC-BY-4.0",
                    "figure_type": "microscopy",
                }
            ).encode()
            for ext, payload in (("jpg", data), ("json", meta)):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                assert tar is not None
                tar.addfile(info, io.BytesIO(payload))
        if rows["image"]:
            writer.write_table(pa.table(rows, schema=schema), row_group_size=ROW_GROUP)
    if tar is not None:
        tar.close()
    done.write_text(json.dumps({"n": n, "bytes": sum(sizes)}))
    sizes.sort()
    print(
        f"generated {n} JPEGs in {time.perf_counter() - clock:.0f} s: "
        f"{sizes[0] / 1024:.0f}–{sizes[-1] / 1024:.0f} KB, median {sizes[n // 2] / 1024:.0f} KB, "
        f"p5 {sizes[n // 20] / 1024:.0f} KB, p95 {sizes[n * 19 // 20] / 1024:.0f} KB",
        flush=True,
    )
    return parquet, shards


# ---------------------------------------------------------------------- the cases
def _read_parquet(path: Path) -> Iterator[tuple[str, bytes, str]]:
    pf = pq.ParquetFile(path, pre_buffer=False)  # as ingest reads it: one row group at a time
    for batch in pf.iter_batches(batch_size=BATCH, columns=["image_name", "image", "caption"]):
        images = batch.column("image").field("bytes").to_pylist()
        names = batch.column("image_name").to_pylist()
        captions = batch.column("caption").to_pylist()
        yield from zip(names, images, captions, strict=True)


def _read_shards(folder: Path) -> Iterator[tuple[str, bytes, str]]:
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard, "r|*") as tf:
            key, image = None, None
            for member in tf:
                tf.members = []
                stem, _, ext = member.name.partition(".")
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                if ext == "jpg":
                    key, image = stem, data
                elif ext == "json" and stem == key:
                    yield key, image, json.loads(data)["caption"]  # type: ignore[misc]


def _decode(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


def baseline(fmt: str, path: Path, store: Path, workers: int) -> int:
    """Read, decode once in a thread pool (one batch ahead), one bare lancedb add."""
    schema = pa.schema([("key", pa.string()), ("image", pa.binary()), ("caption", pa.string())])
    records = _read_parquet(path) if fmt == "parquet" else _read_shards(path)
    count = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal count
        with ThreadPoolExecutor(workers) as pool:
            pending = None
            while True:
                chunk = [r for _, r in zip(range(BATCH), records, strict=False)]
                futures = [pool.submit(_decode, data) for _, data, _ in chunk]
                if pending is not None:
                    done_chunk, done_futures = pending
                    for future in done_futures:
                        future.result()
                    count += len(done_chunk)
                    keys, images, captions = zip(*done_chunk, strict=True)
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(keys), pa.array(images, pa.binary()), pa.array(captions)],
                        schema=schema,
                    )
                if not chunk:
                    return
                pending = (chunk, futures)

    db = lancedb.connect(str(store))
    table = db.create_table("pairs", schema=schema)
    table.add(pa.RecordBatchReader.from_batches(schema, batches()))
    assert table.count_rows() == count
    return count


def ours(path: Path, store: Path, workers: int) -> int:
    report = ingest_source(open_store(store), path, IngestSettings(workers=workers))
    assert report.figures_new == report.read, report.to_dict()
    return report.read


def run_case(case: str, fmt: str, path: Path, workers: int) -> dict[str, float]:
    store = Path(tempfile.mkdtemp(prefix=f"bench-{case}-{fmt}-"))
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = usage.ru_utime + usage.ru_stime
        clock = time.perf_counter()
        n = ours(path, store, workers) if case == "ours" else baseline(fmt, path, store, workers)
        seconds = time.perf_counter() - clock
    finally:
        shutil.rmtree(store, ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "records": n,
        "seconds": seconds,
        "pairs_per_s": n / seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime - cpu0,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def _subprocess(case: str, fmt: str, path: Path, workers: int) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--case",
        case,
        "--fmt",
        fmt,
        "--path",
        str(path),
        "--workers",
        str(workers),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{case}/{fmt} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="records for the throughput run")
    parser.add_argument("--small", type=int, default=2_000, help="records for the memory check")
    parser.add_argument("--workers", type=int, default=0, help="decode threads (0 = CPU count)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/microvqa-bench-ingest"))
    parser.add_argument("--formats", default="parquet,webdataset")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per throughput case, interleaved (best kept)"
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--fmt", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1

    if args.case:  # child process: one case, one JSON line (imports are out of the timing)
        print(json.dumps(run_case(args.case, args.fmt, args.path, workers)))
        return

    formats = [f for f in args.formats.split(",") if f]
    sizes = sorted({args.small, args.n}) if args.small else [args.n]
    data = {n: ensure_data(args.cache, n, workers) for n in sizes}
    load = os.getloadavg()[0]
    print(f"cpu cores: {os.cpu_count()}, decode workers: {workers}, load average {load:.1f}")
    if load > (os.cpu_count() or 1):
        print("warning: the machine is busy; wall times are noisy (compare CPU seconds too)")
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    for fmt in formats:
        for n in sizes:
            path = data[n][0] if fmt == "parquet" else data[n][1]
            cases = ("baseline", "ours") if n == args.n else ("ours",)
            repeat = args.repeat if n == args.n else 1  # the memory check needs one run
            for _ in range(repeat):  # interleaved; the fastest run of each case is kept
                for case in cases:
                    r = _subprocess(case, fmt, path, workers)
                    print(
                        f"  {fmt:<10} {case:<8} n={n:<6} {r['seconds']:7.1f} s "
                        f"{r['pairs_per_s']:8.1f} pairs/s  cpu {r['cpu_s']:6.1f} s  "
                        f"peak RSS {r['peak_rss_mb']:6.0f} MB",
                        flush=True,
                    )
                    best = results.get((case, fmt, n))
                    if best is None or r["seconds"] < best["seconds"]:
                        results[case, fmt, n] = r

    n = args.n
    print(f"\n{n:,} figure–caption pairs (best of {args.repeat})")
    print(
        f"{'source':<11}{'ours pairs/s':>13}{'base pairs/s':>13}{'time ratio':>11}"
        f"{'ours cpu s':>11}{'base cpu s':>11}{'cpu ratio':>10}{'RSS ours':>10}{'RSS base':>10}"
    )
    for fmt in formats:
        o, b = results["ours", fmt, n], results["baseline", fmt, n]
        print(
            f"{fmt:<11}{o['pairs_per_s']:>13.1f}{b['pairs_per_s']:>13.1f}"
            f"{o['seconds'] / b['seconds']:>10.2f}x{o['cpu_s']:>11.1f}{b['cpu_s']:>11.1f}"
            f"{o['cpu_s'] / b['cpu_s']:>9.2f}x{o['peak_rss_mb']:>7.0f} MB{b['peak_rss_mb']:>7.0f} MB"
        )
    if args.small and args.small != n:
        print(f"\npeak RSS of ours, {args.small:,} vs {n:,} records")
        print(f"{'source':<11}{f'n={args.small}':>12}{f'n={n}':>12}{'growth':>9}")
        for fmt in formats:
            small, large = results["ours", fmt, args.small], results["ours", fmt, n]
            print(
                f"{fmt:<11}{small['peak_rss_mb']:>9.0f} MB{large['peak_rss_mb']:>9.0f} MB"
                f"{large['peak_rss_mb'] / small['peak_rss_mb']:>8.2f}x"
            )
    print("\ntargets: time ratio ≤ 1.5x; peak RSS flat in the number of records")


if __name__ == "__main__":
    main()
