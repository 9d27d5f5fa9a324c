"""Fixtures shared by every test module: an isolated settings environment and a fresh store."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory, monkeypatch):
    """No test reads the developer's own config file or MICROVQA_* variables."""
    import microvqa_tui.config as config

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", home / "config.toml")
    for name in list(__import__("os").environ):
        if name.startswith("MICROVQA_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def store(tmp_path):
    from store import open_store

    return open_store(tmp_path / "store")


@pytest.fixture
def settings(tmp_path):
    from microvqa_tui.config import load_settings

    return load_settings(store=tmp_path / "store")


def pytest_sessionfinish(session, exitstatus):
    """Free loaded models before interpreter shutdown, when llama.cpp's finaliser would fail."""
    import gc
    import sys

    registry = sys.modules.get("microvqa_tui.models.registry")
    if registry is not None:
        registry.release()
    gc.collect()
