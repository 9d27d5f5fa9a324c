"""The Export screen's bridge to the export pipeline (`microvqa_tui.pipeline.export`).

The export step is written separately; this module finds its public function when the build
has one and calls it with the options the screen collected, passing only the parameters the
function declares. Without it, `exporter()` is None and the screen says so. No Textual here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import ExportError
from microvqa_tui.progress import CancelToken, NullProgress, ProgressReporter
from microvqa_tui.services.status import module_available

if TYPE_CHECKING:
    from microvqa_tui.config import Settings
    from store import Store

EXPORT_MODULE = "microvqa_tui.pipeline.export"
CANDIDATES = ("export_dataset", "run_export", "export")
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


def exporter() -> Callable[..., Any] | None:
    """The export pipeline's public function, or None when not in this build."""
    if not module_available(EXPORT_MODULE):
        return None
    module = importlib.import_module(EXPORT_MODULE)
    for name in CANDIDATES:
        function = getattr(module, name, None)
        if callable(function):
            return function
    return None


def run_export(
    store: Store,
    settings: Settings,
    options: ExportOptions,
    *,
    progress: ProgressReporter | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Call the export function with the options it accepts; returns its report as a dict."""
    function = exporter()
    if function is None:
        raise ExportError("export is not available in this build")
    if not options.out_dir.strip():
        raise ExportError("no output folder given", hint="type the folder to write")
    out = Path(options.out_dir).expanduser()
    available: dict[str, Any] = {
        "store": store,
        "settings": settings,
        "out_dir": out,
        "out": out,
        "output": out,
        "path": out,
        "dest": out,
        "format": options.format,
        "fmt": options.format,
        "fractions": options.split,
        "split": options.split,
        "seed": options.seed,
        "include_held_out": options.include_held_out,
        "include_flagged": options.include_flagged,
        "overwrite": options.overwrite,
        "options": options,
        "progress": progress or NullProgress(),
        "cancel": cancel or CancelToken(),
    }
    signature = inspect.signature(function)
    args, kwargs = [], {}
    for name, parameter in signature.parameters.items():
        if name not in available:
            if parameter.default is inspect.Parameter.empty and parameter.kind not in (
                inspect.Parameter.VAR_KEYWORD,
                inspect.Parameter.VAR_POSITIONAL,
            ):
                raise ExportError(
                    f"the export function needs {name!r}, which this screen does not collect",
                    hint="use `microvqa export` on the command line",
                )
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            args.append(available[name])
        else:
            kwargs[name] = available[name]
    report = function(*args, **kwargs)
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if isinstance(report, dict):
        return report
    return {"result": str(report), "out_dir": str(out)}


def preview(store: Store, options: ExportOptions) -> dict[str, Any] | None:
    """How many MCQs the export would take and why others stay out (None when the export
    step has no `select_mcqs`)."""
    if not module_available(EXPORT_MODULE):
        return None
    module = importlib.import_module(EXPORT_MODULE)
    select = getattr(module, "select_mcqs", None)
    if select is None:
        return None
    selection = select(
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
