"""`export_dataset`: selected MCQs → leakage-free splits → files in one folder + dataset card."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from microvqa_tui.common.runs import record_run
from microvqa_tui.errors import ExportError
from microvqa_tui.pipeline.export.card import render_card
from microvqa_tui.pipeline.export.outdir import prepare_out_dir, write_marker
from microvqa_tui.pipeline.export.paths import MANIFEST, safe_filename, write_text
from microvqa_tui.pipeline.export.select import Selection, select_mcqs
from microvqa_tui.pipeline.export.writers import (
    JsonLinesWriter,
    ParquetSplitWriter,
    image_relpath,
    split_relpath,
    write_image,
)
from microvqa_tui.pipeline.splits import (
    SplitItem,
    assign_splits,
    dup_groups_as_keys,
    leakage_report,
    parse_fractions,
)
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from store import Store
from store.schema import utcnow

FORMATS = ("parquet", "jsonl", "llava")
STEP = "export"
BATCH = 256  # MCQs per write; one figures lookup per batch (bounded memory: ~BATCH images)
_EXTENSIONS = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "TIFF": ".tif",
    "GIF": ".gif",
    "BMP": ".bmp",
    "WEBP": ".webp",
}


@dataclass
class ExportReport:
    run_id: str
    out_dir: str
    format: str
    seed: int
    fractions: dict[str, float]
    splits: dict[str, int]
    selection_rule: str
    excluded: dict[str, int]
    leakage: dict[str, Any]
    files: list[str] = field(default_factory=list)
    images: int = 0
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_excluded(excluded: dict[str, int]) -> str:
    """`12 not curated (pending), 3 rejected`: how many MCQs were left out and why."""
    return ", ".join(f"{n:,} {why}" for why, n in sorted(excluded.items(), key=lambda kv: -kv[1]))


def image_names(figures: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A unique, safe file name per figure: the source's own base name when free, else
    suffixed with the figure id. Deterministic (figures taken in id order)."""
    used: set[str] = set()
    names: dict[str, str] = {}
    for fid in sorted(figures):
        fig = figures[fid]
        fmt = (fig.get("format") or "").upper()
        ext = _EXTENSIONS.get(fmt) or "." + safe_filename(fmt.lower(), "img")
        raw = (
            PurePosixPath((fig.get("image_path") or "").replace("\\", "/")).name
            or fig.get("original_id")
            or fid
        )
        safe = safe_filename(raw, fid)
        stem = safe.rsplit(".", 1)[0] if "." in safe else safe
        candidates = [f"{stem}{ext}", f"{stem}_{fid[:8]}{ext}", f"{fid}{ext}"]
        name = next(
            (c for c in map(safe_filename, candidates) if c.lower() not in used), f"{fid}{ext}"
        )
        used.add(name.lower())
        names[fid] = name
    return names


def _split_items(selection: Selection) -> list[SplitItem]:
    items = []
    for row in selection.mcqs:
        articles = sorted(
            {selection.figures[f].get("article_id") or "" for f in row["image_ids"]} - {""}
        )
        items.append(
            SplitItem(
                row["mcq_id"],
                list(row["image_ids"]),
                articles,
                row.get("task_str") or "",
                row.get("bloom_level"),
            )
        )
    return items


def plan_splits(
    store: Store, selection: Selection, fractions: dict[str, float], seed: int
) -> tuple[dict[str, str], dict[str, Any]]:
    """(mcq_id → split, leakage report) for a selection."""
    items = _split_items(selection)
    groups = dup_groups_as_keys(store)
    flat = [members for kind_groups in groups.values() for members in kind_groups]
    assignment = assign_splits(items, fractions, seed=seed, groups=flat)
    leakage = leakage_report(items, assignment, groups=groups)
    if (
        leakage["cross_split_groups"]
        or leakage["cross_split_articles"]
        or leakage["cross_split_figures"]
    ):
        raise ExportError(
            f"internal error: the split leaks ({json.dumps(leakage['examples'])[:300]})"
        )
    return assignment, leakage


def planned_files(fmt: str, splits: Iterable[str], names: dict[str, str]) -> list[str]:
    """Every file an export may write: what the folder's manifest lists before writing."""
    files = [split_relpath(fmt, split) for split in splits]
    if fmt != "parquet":
        files += [image_relpath(name) for name in names.values()]
    return [*files, "README.md", MANIFEST]


def _record(
    row: dict[str, Any], split: str, selection: Selection, names: dict[str, str]
) -> dict[str, Any]:
    first = selection.figures[row["image_ids"][0]]
    source = first.get("attribution") or first.get("article_id") or first.get("source") or ""
    return {
        **row,
        "split": split,
        "image_name": names[row["image_ids"][0]],
        "image_names": [names[f] for f in row["image_ids"]],
        "image_caption": selection.captions.get(row["mcq_id"], ""),
        "images_source": source,
        "article_id": first.get("article_id") or "",
        "license": first.get("license") or "",
        "attribution": first.get("attribution") or "",
        "cot": row.get("cot") or "",
        "task_str": row.get("task_str") or "",
        "difficulty_tier": row.get("difficulty_tier") or "",
        "family": row.get("family") or "",
    }


def _image_bytes(store: Store, figure_ids: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for fig in store.get_many(
        "figures", figure_ids, columns=["figure_id", "image_bytes", "image_path"]
    ):
        data = fig.get("image_bytes")
        if not data and fig.get("image_path"):
            try:
                data = Path(fig["image_path"]).read_bytes()
            except OSError:
                data = None
        if data:
            out[fig["figure_id"]] = data
    return out


def export_dataset(
    store: Store,
    out_dir: Path | str,
    *,
    fmt: str = "parquet",
    fractions: str | dict[str, float] = "0.8,0.1,0.1",
    seed: int = 0,
    include_flagged: bool = False,
    include_held_out: bool = False,
    include_pending: bool = False,
    overwrite: bool = False,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> ExportReport:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    progress = progress or NullProgress()
    fracs = fractions if isinstance(fractions, dict) else parse_fractions(fractions)
    selection = select_mcqs(
        store,
        include_flagged=include_flagged,
        include_held_out=include_held_out,
        include_pending=include_pending,
    )
    if not selection.mcqs:
        raise ExportError(
            "nothing to export: no MCQ is accepted or kept; left out: "
            + (describe_excluded(selection.excluded) or "nothing (the store has no MCQ)"),
            hint="review MCQs (`microvqa review accept …`), or pass --include-flagged / "
            "--include-held-out / --include-pending",
        )
    assignment, leakage = plan_splits(store, selection, fracs, seed)
    names = image_names(selection.figures)
    root = prepare_out_dir(
        Path(out_dir),
        overwrite=overwrite,
        planned=planned_files(fmt, fracs, names),
        protected=[store.path],
    )
    config = {
        "out_dir": str(root),
        "format": fmt,
        "fractions": fracs,
        "seed": seed,
        "include_flagged": include_flagged,
        "include_held_out": include_held_out,
        "include_pending": include_pending,
    }
    with record_run(store, STEP, config=config) as run:
        report = ExportReport(
            run.run_id,
            str(root),
            fmt,
            seed,
            fracs,
            {},
            selection.rule,
            dict(selection.excluded),
            leakage,
            created_at=utcnow().strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        files: list[str] = []
        written_images: set[str] = set()
        exported: list[dict[str, Any]] = []
        progress.start(f"exporting {fmt}", len(selection.mcqs))
        for split in fracs:
            rows = [r for r in selection.mcqs if assignment.get(r["mcq_id"]) == split]
            if not rows:
                continue
            writer: Any = (
                ParquetSplitWriter(root, split)
                if fmt == "parquet"
                else JsonLinesWriter(root, split, fmt == "llava")
            )
            try:
                for start in range(0, len(rows), BATCH):
                    if cancel is not None:
                        cancel.check()
                    batch = rows[start : start + BATCH]
                    fids = sorted({f for r in batch for f in r["image_ids"]})
                    blobs = _image_bytes(store, fids)
                    records = []
                    for row in batch:
                        if all(f in blobs for f in row["image_ids"]):
                            records.append(_record(row, split, selection, names))
                        else:
                            report.excluded["missing image"] = (
                                report.excluded.get("missing image", 0) + 1
                            )
                    if fmt == "parquet":
                        if records:
                            writer.write(records, blobs, names)
                    else:
                        for rec in records:
                            for fid in rec["image_ids"]:
                                if fid not in written_images:
                                    files.append(write_image(root, names[fid], blobs[fid]))
                                    written_images.add(fid)
                        writer.write(records, names)
                    exported.extend(records)
                    progress.advance(len(batch))
            finally:
                relative = writer.close()
            files.append(relative)
            report.splits[split] = writer.rows
        report.images = len({f for rec in exported for f in rec["image_ids"]})
        report.files = [*sorted(files), "README.md", MANIFEST]
        write_text(
            root,
            "README.md",
            render_card(
                store, records=exported, figures=selection.figures, report=report.to_dict()
            ),
        )
        write_marker(root, report.files, {**report.to_dict(), "complete": True})
        run.counts.update(
            {
                "exported": sum(report.splits.values()),
                "images": report.images,
                **{f"split_{k}": v for k, v in report.splits.items()},
            }
        )
        run.counts.update({f"excluded_{k}": v for k, v in report.excluded.items()})
        return report
