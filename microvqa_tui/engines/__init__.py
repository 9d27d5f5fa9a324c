"""Engines run a `BatchStep`'s `process` over batches and hand back finished batches.

* `local`: in this process, one batch after another (the default);
* `ray`: Ray Data `map_batches` over an actor pool; imported only when chosen, so Ray is an
  optional extra (`pip install 'microvqa_tui[ray]'`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from microvqa_tui.config.engine import EngineSettings

if TYPE_CHECKING:
    from microvqa_tui.config import (
        Settings,  # the settings module is imported at CLI start: nothing heavy here
    )
    from microvqa_tui.engines.base import Engine

ENGINES = ("local", "ray")

__all__ = ["EngineSettings", "engine_for"]


def engine_for(settings: Settings, kind: str | None = None) -> Engine:
    """The engine named by `kind`, else by `settings.engine.kind`."""
    cfg = settings.engine
    kind = kind or cfg.kind
    if kind == "local":
        from microvqa_tui.engines.local import LocalEngine

        return LocalEngine(cfg.batch_size)
    if kind == "ray":
        from microvqa_tui.engines.ray_data import RayEngine

        return RayEngine(cfg)
    from microvqa_tui.errors import ConfigError

    raise ConfigError(f"unknown engine {kind!r}", hint=f"engines: {', '.join(ENGINES)}")
