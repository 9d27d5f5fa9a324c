"""`generate_spatial`: generate spatial-reasoning MCQs and write them to the store.

Items become ordinary MCQs (family "spatial:<family>", origin "spatial", status kept) whose
images are stored as figures (source_kind "spatial", content-addressed ids), so they go
through the same dedup, review and export as every other MCQ. Micrograph families draw
their source figures from the store (never from figures this generator made); molecular
families read a structures folder (default: the bundled examples in assets/spatial).

Deterministic: item i of a family depends only on (seed, family, i) and the inputs, and its
id is content-addressed from its parameters and text, so re-running adds nothing and a
larger --count only appends items.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from microvqa_tui.common.runs import record_run
from microvqa_tui.errors import PipelineError
from microvqa_tui.pipeline.spatial.common import (
    FAMILY_PREFIX,
    GENERATOR_VERSION,
    INTERACTION_FAMILIES,
    MICRO_FAMILIES,
    MOL_VIEW_FAMILIES,
    ORIGIN,
    SOURCE_KIND,
    SpatialConfig,
    SpatialItem,
    canonical_json,
)
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.vocabulary import STATUS_KEPT
from store import Store, content_id, text_id
from store.queries import quote
from store.schema import utcnow

STEP = "spatial"
TASK_STR = "spatial_reasoning"
BATCH = 32
CHUNK = 64  # items in flight at once when several threads generate
CACHE_FIGURES = 16
# Derived numbers that do not define an item: left out of its id.
_VOLATILE_PARAMS = ("option_scores",)


@dataclass
class FamilyCounts:
    requested: int = 0
    generated: int = 0
    mcqs_new: int = 0
    figures_new: int = 0
    skipped: int = 0  # items for which no source gave a clear, unambiguous pair
    elapsed_s: float = 0.0

    @property
    def items_per_s(self) -> float:
        return round(self.generated / self.elapsed_s, 2) if self.elapsed_s > 0 else 0.0


@dataclass
class SpatialReport:
    run_id: str
    families: dict[str, FamilyCounts] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def generated(self) -> int:
        return sum(c.generated for c in self.families.values())

    @property
    def mcqs_new(self) -> int:
        return sum(c.mcqs_new for c in self.families.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "generated": self.generated,
            "mcqs_new": self.mcqs_new,
            "figures_new": sum(c.figures_new for c in self.families.values()),
            "skipped": sum(c.skipped for c in self.families.values()),
            "elapsed_s": round(self.elapsed_s, 3),
            "families": {
                f: {**asdict(c), "elapsed_s": round(c.elapsed_s, 3), "items_per_s": c.items_per_s}
                for f, c in self.families.items()
            },
            "sources": self.sources,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- rows


def mcq_id_of(item: SpatialItem) -> str:
    params = {k: v for k, v in item.params.items() if k not in _VOLATILE_PARAMS}
    return text_id(
        FAMILY_PREFIX + item.family,
        canonical_json(params),
        item.question,
        *item.choices,
        str(item.correct_index),
    )


def item_rows(item: SpatialItem, run_id: str, now=None) -> tuple[list[dict], dict]:
    """The figure rows of an item's images and its MCQ row."""
    now = now or utcnow()
    figures = []
    for image in item.images:
        fid = content_id(image.data)
        figures.append(
            {
                "figure_id": fid,
                "content_hash": hashlib.sha256(image.data).hexdigest(),
                "image_bytes": image.data,
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "mode": "RGB",
                "byte_size": len(image.data),
                "source_kind": SOURCE_KIND,
                "source": item.source.get("source", ""),
                "source_ref": f"{FAMILY_PREFIX}{item.family}#{item.params.get('index', 0)}",
                "original_id": item.source.get("original_id", ""),
                "article_id": item.source.get("article_id", ""),
                "license": item.source.get("license", ""),
                "attribution": item.source.get("attribution", ""),
                "meta_json": canonical_json(
                    {"generator": GENERATOR_VERSION, "family": item.family, "role": image.role}
                ),
                "ingested_at": now,
                "run_id": run_id,
            }
        )
    image_ids = [f["figure_id"] for f in figures]
    mcq = {
        "mcq_id": mcq_id_of(item),
        "figure_id": image_ids[0],
        "image_ids": image_ids,
        "question": item.question,
        "choices": list(item.choices),
        "correct_index": item.correct_index,
        "correct_answer": item.correct_answer,
        "cot": item.cot,
        "task_str": TASK_STR,
        "family": FAMILY_PREFIX + item.family,
        "origin": ORIGIN,
        # The key is exact by construction and checked at generation (distractors differ,
        # the answer re-derives from the stored parameters): nothing for the LLM filters to
        # judge, so the item is kept; dedup and review can still hold it out or reject it.
        "status": STATUS_KEPT,
        "params_json": canonical_json(item.params),
        "created_at": now,
        "run_id": run_id,
    }
    return figures, mcq


# --------------------------------------------------------------------------- sources


class StoreFigures:
    """Source figures of the micrograph families: every stored figure not made here, in id
    order, decoded on demand (a small LRU keeps the recently used ones)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        where = f"source_kind != {quote(SOURCE_KIND)}"
        self.ids = sorted(store.ids("figures", where=where))
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, figure_id: str):
        with self._lock:  # generator threads share the cache
            return self._load(figure_id)

    def _load(self, figure_id: str):
        from microvqa_tui.pipeline.spatial.imaging import SourceImage, decode_image
        from microvqa_tui.pipeline.spatial.micrograph import LoadedFigure

        if figure_id in self._cache:
            self._cache.move_to_end(figure_id)
            return self._cache[figure_id]
        row = self.store.get(
            "figures",
            figure_id,
            columns=[
                "figure_id",
                "image_bytes",
                "image_path",
                "article_id",
                "license",
                "attribution",
            ],
        )
        loaded = None
        if row is not None:
            data = row.get("image_bytes")
            if data is None and row.get("image_path") and Path(row["image_path"]).is_file():
                data = Path(row["image_path"]).read_bytes()
            if data is not None:
                try:
                    image = decode_image(data)
                    loaded = LoadedFigure(
                        figure_id,
                        SourceImage(image),
                        row.get("article_id") or "",
                        row.get("license") or "",
                        row.get("attribution") or "",
                    )
                except Exception:  # undecodable figure: not a source
                    loaded = None
        self._cache[figure_id] = loaded
        if len(self._cache) > CACHE_FIGURES:
            self._cache.popitem(last=False)
        return loaded


def family_items(
    family: str,
    cfg: SpatialConfig,
    *,
    figures: StoreFigures | None = None,
    figure_ids: list[str] | None = None,
    load: Callable | None = None,
    library=None,
) -> Iterator[tuple[int, SpatialItem | None]]:
    """Items 0..count-1 of one family, in order (None where no source gave a usable item).

    Items are independent, so they are made by `cfg.workers` threads (Pillow and NumPy
    release the GIL while they sample, draw and encode); the order and every item are the
    same whatever the number of threads."""
    if family in MICRO_FAMILIES:
        from microvqa_tui.pipeline.spatial.micrograph import generate_micro_item

        ids = figure_ids if figure_ids is not None else (figures.ids if figures else [])
        loader = load or (figures.load if figures else None)

        def make(index: int) -> SpatialItem | None:
            return generate_micro_item(family, index, ids, loader, cfg) if ids else None

    else:
        from microvqa_tui.pipeline.spatial.interaction import generate_interaction_item
        from microvqa_tui.pipeline.spatial.molview import generate_mol_view_item

        build = generate_mol_view_item if family in MOL_VIEW_FAMILIES else generate_interaction_item

        def make(index: int) -> SpatialItem | None:
            return build(family, index, library, cfg) if library is not None else None

    workers = resolve_workers(cfg.workers)
    if workers <= 1:
        for index in range(cfg.count):
            yield index, make(index)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spatial") as pool:
        for start in range(0, cfg.count, CHUNK):
            indices = range(start, min(start + CHUNK, cfg.count))
            yield from zip(indices, pool.map(make, indices), strict=True)


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else min(4, os.cpu_count() or 1)


def open_library(structures: Path | None, cfg: SpatialConfig):
    from microvqa_tui.pipeline.spatial.molecular import StructureLibrary
    from microvqa_tui.pipeline.spatial.structures import bundled_structures, discover

    root = Path(structures) if structures is not None else bundled_structures()
    return StructureLibrary(discover(root), cfg.pocket_radius)


# --------------------------------------------------------------------------- the step


def generate_spatial(
    store: Store,
    cfg: SpatialConfig,
    *,
    structures: Path | None = None,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> SpatialReport:
    """Generate `cfg.count` items of each family in `cfg.families` and write them."""
    cfg.validate()
    progress = progress or NullProgress()
    cancel = cancel or CancelToken()
    wants_micro = any(f in MICRO_FAMILIES for f in cfg.families)
    wants_mol = any(f in MOL_VIEW_FAMILIES + INTERACTION_FAMILIES for f in cfg.families)
    config = {
        **asdict(cfg),
        "families": list(cfg.families),
        "structures": str(structures) if structures else "bundled",
    }
    clock = time.perf_counter()
    with record_run(store, STEP, config=config) as record:
        report = SpatialReport(run_id=record.run_id)
        figures = StoreFigures(store) if wants_micro else None
        library = open_library(structures, cfg) if wants_mol else None
        if figures is not None:
            report.sources["figures"] = len(figures.ids)
            if not figures.ids:
                report.notes.append(
                    "no source figures in the store: ingest figures first for the micrograph "
                    "families"
                )
        if library is not None:
            report.sources["structures"] = str(library.set.root)
            report.sources["molecules"] = len(library.molecules)
            report.sources["complexes"] = len(library.complexes)
            if not library.complexes and any(f in INTERACTION_FAMILIES for f in cfg.families):
                report.notes.append(
                    f"no protein–ligand complex under {library.set.root}: interaction families "
                    "need <id>_protein.pdb + <id>_ligand.sdf|mol2 folders"
                )
        for family in cfg.families:
            counts = report.families.setdefault(family, FamilyCounts(requested=cfg.count))
            progress.start(f"spatial:{family}", cfg.count)
            started = time.perf_counter()
            figure_rows: list[dict] = []
            mcq_rows: list[dict] = []
            for _index, item in family_items(family, cfg, figures=figures, library=library):
                if item is None:
                    counts.skipped += 1
                else:
                    rows, mcq = item_rows(item, record.run_id)
                    figure_rows.extend(rows)
                    mcq_rows.append(mcq)
                    counts.generated += 1
                progress.advance(1)
                if len(mcq_rows) >= BATCH:
                    _flush(store, figure_rows, mcq_rows, counts)
                    cancel.check()
            _flush(store, figure_rows, mcq_rows, counts)
            counts.elapsed_s = time.perf_counter() - started
            record.counts[family] = {
                "generated": counts.generated,
                "new": counts.mcqs_new,
                "skipped": counts.skipped,
            }
            record.timings[f"{family}_s"] = round(counts.elapsed_s, 3)
            cancel.check()
        report.elapsed_s = time.perf_counter() - clock
        record.counts["mcqs_new"] = report.mcqs_new
        record.counts["generated"] = report.generated
    return report


def _flush(store: Store, figure_rows: list[dict], mcq_rows: list[dict], counts: FamilyCounts):
    if not mcq_rows:
        return
    # figures first: an MCQ never points at a figure that is not written
    counts.figures_new += store.insert_new("figures", figure_rows)
    counts.mcqs_new += store.insert_new("mcqs", mcq_rows)
    figure_rows.clear()
    mcq_rows.clear()


def parse_families(text: str | None) -> tuple[str, ...]:
    """ "rotation,zoom" -> ("rotation", "zoom"); "all"/empty -> every family; unknown names
    are an error that lists the known ones."""
    from microvqa_tui.pipeline.spatial.common import FAMILIES

    if not text or text.strip().lower() == "all":
        return FAMILIES
    names = [n.strip().removeprefix(FAMILY_PREFIX) for n in text.split(",") if n.strip()]
    groups = {
        "micrograph": MICRO_FAMILIES,
        "molecular": MOL_VIEW_FAMILIES,
        "interaction": INTERACTION_FAMILIES,
    }
    out: list[str] = []
    for name in names:
        for fam in groups.get(name, (name,)):
            if fam not in out:
                out.append(fam)
    unknown = [n for n in out if n not in FAMILIES]
    if unknown:
        raise PipelineError(
            f"unknown spatial famil{'ies' if len(unknown) > 1 else 'y'}: {', '.join(unknown)}",
            hint=f"known: {', '.join(FAMILIES)} (or groups micrograph, molecular, interaction)",
        )
    return tuple(out)
