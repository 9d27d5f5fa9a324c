"""One loaded copy of each model per process, shared by every stage, and freeing it.

Models are keyed by what they were loaded from (role first); `release` drops them and frees
their RAM / GPU memory.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

from microvqa_tui.models import device as devices

_CACHE: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.RLock()


def cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The model stored under `key`, built by `build()` on first use."""
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = build()
            _CACHE[key] = model
        return model


def is_loaded(role: str, how: str | None = None) -> bool:
    """Whether a model of `role` is in memory (`how`: only one loaded that way, e.g. "server")."""
    with _LOCK:
        return any(k[0] == role and (how is None or k[1] == how) for k in _CACHE)


def loaded() -> list[str]:
    """Roles with a model in memory (for status displays)."""
    with _LOCK:
        return sorted({key[0] for key in _CACHE})


def release(*roles: str) -> None:
    """Drop loaded models (all, or those of `roles`) and free their memory (GPU included)."""
    with _LOCK:
        keys = [k for k in _CACHE if not roles or k[0] in roles]
        models = [_CACHE.pop(k) for k in keys]
    devices.release(*models)


# llama.cpp's own finaliser fails when it runs during interpreter shutdown (its C bindings are
# already gone: "TypeError: 'NoneType' object is not callable"); close models while they work.
atexit.register(release)
