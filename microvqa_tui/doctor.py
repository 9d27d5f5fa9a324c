"""Environment checks for `microvqa doctor`: Python, torch/CUDA, llama.cpp build, models.

Each check is cheap and never raises: a broken install is exactly what doctor must report.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from microvqa_tui.config import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return Check("python", ok, f"{platform.python_version()} ({sys.executable})")


def check_torch() -> list[Check]:
    version = _version("torch")
    if version is None:
        return [Check("torch", False, "not installed: run scripts/setup.sh")]
    import torch

    checks = [Check("torch", True, f"{version} (CUDA build {torch.version.cuda or 'none'})")]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        checks.append(Check("gpu", True, f"CUDA available: {names}"))
    else:
        checks.append(Check("gpu", True, "no CUDA GPU visible: models run on the CPU"))
    return checks


def check_llama_cpp() -> Check:
    version = _version("llama_cpp_python")
    if version is None:
        return Check("llama-cpp", False, "llama-cpp-python not installed: run scripts/setup.sh")
    try:
        import llama_cpp

        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:
        return Check("llama-cpp", False, f"{version} installed but fails to load: {exc}")
    how = (
        "GPU offload supported"
        if offload
        else "CPU-only build (rebuild with CMAKE_ARGS=-DGGML_CUDA=on for GPU)"
    )
    return Check("llama-cpp", True, f"{version}, {how}")


def check_packages() -> list[Check]:
    wanted = ["lancedb", "pyarrow", "transformers", "open_clip_torch", "torch_geometric", "textual"]
    checks = []
    for dist in wanted:
        version = _version(dist)
        checks.append(
            Check(dist, version is not None, version or "not installed: run scripts/setup.sh")
        )
    return checks


def check_models(settings: Settings) -> list[Check]:
    from microvqa_tui.models.registry import model_status

    return [
        Check(
            f"model:{row['role']}", bool(row["present"]), row.get("detail") or row.get("model", "")
        )
        for row in model_status(settings)
    ]


def check_assets() -> Check:
    """The files the package reads at run time (prompts, sample, example structures)."""
    from microvqa_tui.assets import PROMPTS_DIR, SAMPLE_MANIFEST, SPATIAL_DIR

    wanted = (PROMPTS_DIR / "stage1_qa.md", SAMPLE_MANIFEST, SPATIAL_DIR / "molecules")
    missing = [str(path) for path in wanted if not path.exists()]
    if missing:
        return Check("assets", False, "missing: " + ", ".join(missing))
    return Check("assets", True, str(PROMPTS_DIR.parent))


def run_checks(settings: Settings) -> list[Check]:
    checks = [check_python(), *check_torch(), check_llama_cpp(), *check_packages()]
    checks.append(check_assets())
    store_ok = settings.store.parent.exists() or not settings.store.exists()
    checks.append(Check("store", store_ok, str(settings.store)))
    checks.extend(check_models(settings))
    return checks
