"""Export the curated MCQs: Parquet (MicroVQA++ layout, HF-loadable), JSONL + images, or
LLaVA conversations, in leakage-free splits, with a dataset card. Nothing is written outside
the chosen folder.

Public API: `export_dataset(store, out_dir, fmt=..., fractions=..., seed=..., ...)` → ExportReport;
`select_mcqs` (the selection rule), `plan_splits`, `safe_filename` / `safe_path`.
"""

from microvqa_tui.pipeline.export.core import (
    FORMATS,
    ExportReport,
    export_dataset,
    image_names,
    plan_splits,
)
from microvqa_tui.pipeline.export.outdir import prepare_out_dir
from microvqa_tui.pipeline.export.paths import safe_filename, safe_path
from microvqa_tui.pipeline.export.select import Selection, is_selected, select_mcqs, selection_rule

__all__ = [
    "FORMATS",
    "ExportReport",
    "Selection",
    "export_dataset",
    "image_names",
    "is_selected",
    "plan_splits",
    "prepare_out_dir",
    "safe_filename",
    "safe_path",
    "select_mcqs",
    "selection_rule",
]
