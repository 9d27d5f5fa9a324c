"""Files the package reads at run time: prompt templates (`prompts/`), the embedded sample
(`sample/`) and the example structures of the spatial generators (`spatial/`).

Found through `importlib.resources`, so a wheel installed anywhere finds them as well as a
source checkout (where `assets/` at the repository root links here). pip installs a wheel as
plain files, so the folders are real paths on disk.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def asset_path(*parts: str) -> Path:
    """The path of a shipped file or folder, e.g. `asset_path("prompts", "stage1_qa.md")`."""
    return Path(str(files(__name__).joinpath(*parts)))


PROMPTS_DIR = asset_path("prompts")
SAMPLE_MANIFEST = asset_path("sample", "manifest.jsonl")
SPATIAL_DIR = asset_path("spatial")
