"""Spatial-reasoning items generated per second, per family (issue 8).

Two measurements on the embedded sample (32 figures of assets/sample, the example
structures of assets/spatial):

1. generation alone — items made in memory (views sampled, checked, rendered and encoded),
   single-threaded and with `--workers` threads; reported per wall-clock second and per
   CPU second (the latter is what a quiet core would do: on a shared machine, wall time
   also counts other processes);
2. end to end — `generate_spatial` into a fresh temporary store (figure and MCQ rows
   written in batches, run record), as `microvqa generate spatial` runs it.

Target (issue 8): rendering-bound, ≥ 20 items/s for the micrograph transformation families
on 2 cores.

    python benchmarks/spatial.py                       # 60 micrograph / 30 molecular items
    python benchmarks/spatial.py --count 200 --json spatial.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from microvqa_tui.pipeline.spatial import (  # noqa: E402
    FAMILIES,
    MICRO_FAMILIES,
    SpatialConfig,
    generate_spatial,
)
from microvqa_tui.pipeline.spatial.generate import family_items, open_library  # noqa: E402
from microvqa_tui.pipeline.spatial.imaging import SourceImage, decode_image  # noqa: E402
from microvqa_tui.pipeline.spatial.micrograph import LoadedFigure  # noqa: E402

SAMPLE = REPO / "assets" / "sample" / "images"


def sample_figures() -> dict[str, LoadedFigure]:
    out = {}
    for path in sorted(SAMPLE.iterdir()):
        data = path.read_bytes()
        fid = hashlib.sha256(data).hexdigest()[:32]
        out[fid] = LoadedFigure(fid, SourceImage(decode_image(data)))
    return out


def time_generation(family: str, cfg: SpatialConfig, figures, library) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    made = 0
    for _, item in family_items(
        family, cfg, figure_ids=list(figures), load=figures.get, library=library
    ):
        made += item is not None
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "items": made,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "items_per_s": round(made / wall, 1) if wall else None,
        "items_per_cpu_s": round(made / cpu, 1) if cpu else None,
    }


def add_figures(store) -> None:
    from store import content_id
    from store.schema import utcnow

    rows = []
    for path in sorted(SAMPLE.iterdir()):
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            size, fmt, mode = im.size, im.format, im.mode
        rows.append(
            {
                "figure_id": content_id(data),
                "content_hash": hashlib.sha256(data).hexdigest(),
                "image_bytes": data,
                "width": size[0],
                "height": size[1],
                "format": fmt,
                "mode": mode,
                "byte_size": len(data),
                "source_kind": "manifest",
                "source": str(path),
                "ingested_at": utcnow(),
            }
        )
    store.insert_new("figures", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60, help="micrograph items per family")
    parser.add_argument("--mol-count", type=int, default=30, help="molecular items per family")
    parser.add_argument("--workers", type=int, default=2, help="threads for the parallel run")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]

    figures = sample_figures()
    base = SpatialConfig(seed=args.seed)
    library = open_library(None, base)
    _ = library.molecules  # load structures outside the timings
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()],
        },
        "generation": {},
        "end_to_end": {},
    }
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n")
    print(f"{'family':<18}{'threads':>8}{'items':>7}{'items/s':>10}{'items/CPU-s':>13}")
    for family in families:
        count = args.count if family in MICRO_FAMILIES else args.mol_count
        cfg = replace(base, families=(family,), count=count)
        rows = {}
        for workers in (1, args.workers):
            r = time_generation(family, replace(cfg, workers=workers), figures, library)
            rows[f"threads_{workers}"] = r
            print(
                f"{family:<18}{workers:>8}{r['items']:>7}{r['items_per_s']:>10}"
                f"{r['items_per_cpu_s']:>13}"
            )
        results["generation"][family] = rows

    from store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "store")
        add_figures(store)
        counts = {f: (args.count if f in MICRO_FAMILIES else args.mol_count) for f in families}
        print(f"\nend to end (generate_spatial into a fresh store, {args.workers} threads)")
        for family in families:
            cfg = replace(base, families=(family,), count=counts[family], workers=args.workers)
            report = generate_spatial(store, cfg).to_dict()["families"][family]
            results["end_to_end"][family] = report
            print(
                f"{family:<18}{report['generated']:>7} items {report['items_per_s']:>8} items/s"
                f"  ({report['skipped']} skipped)"
            )
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    micro = [
        results["generation"][f][f"threads_{args.workers}"]["items_per_s"]
        for f in families
        if f in MICRO_FAMILIES
    ]
    if micro:
        print(
            f"\nmicrograph families, {args.workers} threads: min {min(micro)} items/s (target ≥ 20)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
