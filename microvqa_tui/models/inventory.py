"""What `microvqa models` and `microvqa doctor` show per role: where, how big, which device.

Loads nothing: `model_status` imports neither torch nor llama_cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import ModelError
from microvqa_tui.models import ROLES
from microvqa_tui.models import device as devices
from microvqa_tui.models.cache import is_loaded
from microvqa_tui.models.locate import models_section, resolve_role, server_settings

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.models.locate import ModelSource


def _size(paths: list[Path | None]) -> int:
    total = 0
    for path in paths:
        if path is None or not path.exists():
            continue
        if path.is_file():
            total += path.stat().st_size
            continue
        for item in path.rglob("*"):
            try:
                if item.is_file():
                    total += item.stat().st_size
            except OSError:
                continue
    return total


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def role_device(role: str, ms: Any) -> str:
    """Where `role` would run with these settings (never raises)."""
    setting = str(ms.device)
    if role in ("llm", "vlm"):
        from microvqa_tui.models.llm import gpu_offload_supported

        if setting == "cpu":
            return "cpu"
        if not gpu_offload_supported():
            return "cpu (llama.cpp built without GPU offload)"
        if not devices.cuda_available():
            return "cpu (no CUDA GPU visible)"
        layers = "all" if ms.llm_gpu_layers < 0 else str(ms.llm_gpu_layers)
        return f"cuda ({layers} layers)"
    try:
        return devices.resolve_device(setting)
    except ModelError:
        return f"{setting} (unavailable)"


def status(settings: ModelSource = None, *, with_device: bool = True) -> list[dict[str, Any]]:
    """One row per role: role, model, present, path, size_bytes, size, device, source,
    detail, fetch. Loads nothing."""
    ms = models_section(settings)
    rows = []
    for role in ROLES:
        if role in ("llm", "vlm") and _served(role, ms):
            rows.append(server_row(role, settings))
            continue
        r = resolve_role(role, ms)
        size = _size([r.path, r.mmproj]) if r.present else 0
        rows.append(
            {
                "role": role,
                "model": r.model,
                "present": r.present,
                "path": str(r.path) if r.path else "",
                "mmproj": str(r.mmproj) if r.mmproj else "",
                "size_bytes": size,
                "size": human_size(size) if r.present else "",
                "device": role_device(role, ms) if with_device else "",
                "source": r.source,
                "detail": str(r.path) if r.present else r.detail,
                "fetch": "" if r.present else r.fetch,
                "loaded": is_loaded(role),
            }
        )
    return rows


def _served(role: str, ms: Any) -> bool:
    server = server_settings(ms)
    return server is not None and (role == "llm" or bool(server.vision))


def server_row(role: str, settings: ModelSource = None) -> dict[str, Any]:
    """A status row for a role answered by the server (probes whether it answers)."""
    from microvqa_tui.models.server import status_row

    return status_row(role, server_settings(settings), loaded=is_loaded(role, "server"))


def model_status(settings: ModelSource = None) -> list[dict[str, Any]]:
    """`status` without the device column: imports neither torch nor llama_cpp (for
    `microvqa doctor` and the TUI's start-up probe)."""
    return status(settings, with_device=False)
