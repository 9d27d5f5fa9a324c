"""Names a package resolves lazily (PEP 562), so that importing it stays cheap: listing the
CLI's commands or loading the settings imports neither torch, numpy nor lancedb."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: `name` comes from its home module (`homes[name]`,
    relative to the package) the first time it is used."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__
