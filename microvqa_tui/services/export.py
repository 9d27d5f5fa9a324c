"""The Export screen's options and its calls into the export pipeline
(`microvqa_tui.pipeline.export`, imported when first used: it loads pyarrow). No Textual here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import ExportError
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter

if TYPE_CHECKING:
    from microvqa_tui.config import Settings
    from store import Store

FORMATS = ("parquet", "jsonl", "llava")
# Split fractions (train, validation, test). The export keeps an article's figures, a figure's
# items and a duplicate group in one split, whatever the fractions.
SPLITS = ("0.8,0.1,0.1", "0.7,0.15,0.15", "0.9,0.1", "1")
SPLIT_HELP = {
    "0.8,0.1,0.1": "80 / 10 / 10 train / validation / test",
    "0.7,0.15,0.15": "70 / 15 / 15 train / validation / test",
    "0.9,0.1": "90 / 10 train / validation",
    "1": "everything in one split",
}


@dataclass
class ExportOptions:
    out_dir: str
    format: str = "parquet"
    split: str = "0.8,0.1,0.1"
    seed: int = 0
    include_held_out: bool = False
    include_flagged: bool = False
    overwrite: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_export(
    store: Store,
    settings: Settings,
    options: ExportOptions,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Export with the options the screen collected; returns the report as a dict."""
    from microvqa_tui.pipeline.export import export_dataset

    if not options.out_dir.strip():
        raise ExportError("no output folder given", hint="type the folder to write")
    report = export_dataset(
        store,
        Path(options.out_dir).expanduser(),
        fmt=options.format,
        fractions=options.split,
        seed=options.seed,
        include_flagged=options.include_flagged,
        include_held_out=options.include_held_out,
        overwrite=options.overwrite,
        progress=progress or NullProgress(),
        cancel=cancel or CancelToken(),
    )
    return report.to_dict()


def preview(store: Store, options: ExportOptions) -> dict[str, Any]:
    """How many MCQs the export would take and why others stay out."""
    from microvqa_tui.pipeline.export import select_mcqs

    selection = select_mcqs(
        store, include_flagged=options.include_flagged, include_held_out=options.include_held_out
    )
    return {
        "mcqs": len(selection.mcqs),
        "figures": len(selection.figures),
        "excluded": dict(selection.excluded),
        "rule": selection.rule,
    }


def written_folder(report: dict[str, Any], options: ExportOptions) -> str:
    for key in ("out_dir", "folder", "path", "output"):
        if report.get(key):
            return str(report[key])
    return str(Path(options.out_dir).expanduser())
