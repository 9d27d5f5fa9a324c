"""Checks for `microvqa doctor`: Python, torch/CUDA, llama.cpp build, models, and the store.

Each environment check is cheap and never raises: a broken install is exactly what doctor
must report. The store check reads every table in full (`store.check`) and says, for each
problem, the command that recovers from it.
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


def check_store(settings: Settings) -> list[Check]:
    from store.check import verify_store
    from store.db import is_store, open_store

    path = settings.store
    if not path.exists():
        return [Check("store", True, f"{path}: no store yet (`microvqa ingest` creates one)")]
    if not is_store(path):
        return [Check("store", False, f"{path} is not a microvqa store")]
    tables = verify_store(open_store(path, create=False))
    checks = [Check("store", all(t.ok for t in tables), f"{path}: {len(tables)} tables")]
    checks.extend(Check(f"table:{t.table}", t.ok, table_detail(t)) for t in tables)
    return checks


def table_detail(check) -> str:
    """What doctor says about one table: its size, or the problem and how to recover."""
    if check.ok:
        return f"{check.rows:,} rows, version {check.version}"
    if check.problem.startswith("damaged"):
        if check.restore_to is not None:
            how = f"restore its newest intact version: microvqa doctor --restore {check.table} {check.restore_to}"
        else:
            how = "no intact earlier version: re-ingest or re-run the step that writes it"
        return f"{check.problem}; {how}"
    if check.extra_rows:
        return f"{check.problem} ({check.extra_rows} extra rows); microvqa doctor --repair keeps one row per key"
    return f"{check.problem}; re-run the steps that write it (they resume), then microvqa doctor --repair"


def run_checks(settings: Settings) -> list[Check]:
    checks = [check_python(), *check_torch(), check_llama_cpp(), *check_packages()]
    checks.append(check_assets())
    checks.extend(check_store(settings))
    checks.extend(check_models(settings))
    return checks


def repair_store(settings: Settings) -> list[str]:
    """Fix what can be fixed without a choice: duplicate keys (one row kept per key) and a
    rolled-back table's version record (accepting the version on disk). Says what it did."""
    from store import locks
    from store.check import remove_duplicates, verify_store
    from store.db import open_store

    store = open_store(settings.store, create=False)
    done = []
    for check in verify_store(store):
        if check.extra_rows:
            version = check.version
            removed = remove_duplicates(store, check.table)
            done.append(
                f"{check.table}: removed {removed} duplicate rows, one row kept per key "
                f"(undo: microvqa doctor --restore {check.table} {version})"
            )
        elif check.problem.startswith("rolled back"):
            locks.record_version(store.path, check.table, check.version)
            done.append(f"{check.table}: accepted version {check.version} as the newest")
    return done


def restore_table(settings: Settings, table: str, version: int) -> str:
    from store.check import restore_version
    from store.db import open_store

    new = restore_version(open_store(settings.store, create=False), table, version)
    return f"{table}: restored version {version} as the new version {new}"
