"""microvqa_tui: curate microscopy multiple-choice VQA reasoning datasets on one workstation."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository's assets folder (sample data, prompt templates, styles). The project is
#: installed editable (see README), so the folder sits beside the package.
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
