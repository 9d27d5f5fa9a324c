"""Where models run: device resolution, automatic batch sizes, worker counts, releasing memory.

`torch` is imported inside the functions that need it, never at module import.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from typing import Any, Literal

from microvqa_tui.errors import ModelError

DeviceSetting = Literal["auto", "cpu", "cuda"]

#: Encoder batch sizes by workload and device (used when `models.batch_size` is 0).
#: CPU sizes keep latency and memory small; CUDA sizes fill a 24 GB card with fp16 weights
#: and are scaled down on smaller cards (see `auto_batch_size`).
_BATCH_SIZES: dict[str, dict[str, int]] = {
    "clip_image": {"cpu": 16, "cuda": 256},
    "clip_text": {"cpu": 64, "cuda": 512},
    "nli": {"cpu": 16, "cuda": 128},
    "text": {"cpu": 64, "cuda": 512},
}


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(setting: str = "auto") -> str:
    """'auto' -> 'cuda' when a CUDA device is visible, else 'cpu'; 'cuda:1' style is kept.

    Asking for CUDA where there is none is an error (it would silently be 100x slower).
    """
    value = (setting or "auto").strip().lower()
    if value == "auto":
        return "cuda" if cuda_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if value == "cuda" or value.startswith("cuda:"):
        if not cuda_available():
            raise ModelError(
                f"device '{setting}' was asked for but torch sees no CUDA GPU",
                hint="set MICROVQA_MODELS__DEVICE=auto (or cpu), or install a CUDA build of torch",
            )
        return value
    raise ModelError(f"unknown device '{setting}'", hint="use auto, cpu or cuda")


def is_cuda(device: str) -> bool:
    return device == "cuda" or device.startswith("cuda:")


def auto_batch_size(kind: str, device: str, configured: int = 0) -> int:
    """The batch size for `kind` ('clip_image', 'clip_text', 'nli', 'text') on `device`.

    A configured value (> 0) always wins. On CUDA the default is scaled by the card's memory
    relative to 24 GB (at least a quarter of it, at most 4x).
    """
    if configured and configured > 0:
        return int(configured)
    table = _BATCH_SIZES.get(kind, {"cpu": 16, "cuda": 128})
    if not is_cuda(device):
        return table["cpu"]
    size = table["cuda"]
    try:
        import torch

        index = torch.device(device).index or 0
        total = torch.cuda.get_device_properties(index).total_memory
        scale = min(4.0, max(0.25, total / (24 * 1024**3)))
        size = max(8, int(size * scale) // 8 * 8)
    except Exception:  # no CUDA context yet / odd driver: the table value is fine
        pass
    return size


def loader_workers(n_items: int, batch_size: int, configured: int | None = None) -> int:
    """DataLoader worker processes for image decoding.

    0 (decode in this process) when there is at most one batch: starting workers would cost
    more than it saves. Otherwise one per CPU core, leaving one core for the main process,
    capped at 8.
    """
    if configured is not None and configured >= 0:
        return configured
    if n_items <= batch_size:
        return 0
    cores = available_cores()
    return max(1, min(8, cores - 1))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def llama_threads() -> int:
    """Generation threads for llama.cpp: the physical cores we may use (at least 1)."""
    cores = available_cores()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or cores
    except Exception:  # pragma: no cover
        physical = cores
    return max(1, min(cores, physical))


def autocast_dtype(device: str) -> Any:
    """bf16 where the GPU supports it, else fp16; None on the CPU (full fp32 there)."""
    if not is_cuda(device):
        return None
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def inference(device: str) -> Iterator[None]:
    """`torch.inference_mode()` plus mixed-precision autocast on CUDA."""
    import torch

    dtype = autocast_dtype(device)
    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type="cuda", dtype=dtype):
                yield


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars or info logs while loading (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def release(*models: Any) -> None:
    """Free `models` (calls their `close()` when they have one), collect garbage and return
    cached CUDA memory to the driver. Call it when a stage ends.

    Callers must also drop their own references; `registry.release()` clears the cache of
    loaded models and calls this.
    """
    for model in models:
        close = getattr(model, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    gc.collect()
    torch = sys.modules.get("torch")  # never import torch just to release nothing
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.ipc_collect()


def describe(device: str) -> str:
    """'cpu' or 'cuda (NVIDIA RTX A6000)' for tables and reports."""
    if not is_cuda(device):
        return "cpu"
    try:
        import torch

        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)})"
    except Exception:
        return device
