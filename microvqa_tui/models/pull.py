"""Downloading a role's hub model into the model folder (`microvqa models pull`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import ModelError
from microvqa_tui.models import hub
from microvqa_tui.models.locate import models_section, resolve_role

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.models.locate import ModelSource

# Files worth downloading from a transformers repo (no TF/Flax/ONNX duplicates).
_IGNORE = [
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "onnx/*",
    "*.ot",
    "tf_model*",
    "flax_model*",
    "rust_model*",
    "openvino/*",
    "coreml/*",
    "*.tflite",
]
_TOKENIZER_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken"]


@dataclass
class PullResult:
    role: str
    model: str
    status: str  # present | downloaded | manual | failed | unset
    path: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _transformers_ignore(repo_id: str) -> list[str]:
    """Skip .bin weights when the repo also has safetensors (they are duplicates)."""
    ignore = list(_IGNORE)
    if hub.offline_reason() is not None:
        return ignore  # the download reports it, without minutes of retries here
    try:
        from huggingface_hub import HfApi

        files = HfApi().list_repo_files(repo_id)
        if any(f.endswith(".safetensors") for f in files):
            ignore.append("*.bin")
    except Exception:
        pass  # the download itself reports connectivity problems
    return ignore


def _pull_hub(
    repo_id: str,
    model_dir: Path,
    *,
    allow: list[str] | None = None,
    ignore: list[str] | None = None,
) -> Path:
    dest = hub.local_hub_dir(model_dir, repo_id)
    return hub.download(repo_id, dest, allow_patterns=allow, ignore_patterns=ignore)


def pull(role: str, settings: ModelSource = None) -> PullResult:
    """Download `role`'s hub model into the model folder (no-op when present)."""
    ms = models_section(settings)
    r = resolve_role(role, ms)
    model_dir = Path(ms.model_dir).expanduser()
    configured = r.model
    if r.source == "unset":
        return PullResult(role, configured, "unset", detail=f"{r.detail}: {r.fetch}")
    try:
        if role == "clip" and configured.startswith("hf-hub:"):
            repo_id = configured[7:]
            folder = (
                r.path
                if r.present
                else _pull_hub(repo_id, model_dir, ignore=_transformers_ignore(repo_id))
            )
            tower = _pull_clip_text_tower(Path(folder), model_dir)
            status = "present" if r.present and not tower else "downloaded"
            return PullResult(role, configured, status, str(folder), tower or "")
        if r.present:
            return PullResult(role, configured, "present", str(r.path))
        if r.source == "package":
            return PullResult(role, configured, "manual", detail=r.fetch)
        if r.source != "hub":
            return PullResult(role, configured, "manual", detail=f"{r.detail}: {r.fetch}")
        if role in ("llm", "vlm"):
            parts = configured.split("/")
            repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
            folder = _pull_hub(repo_id, model_dir, allow=[filename])
            return PullResult(role, configured, "downloaded", str(folder / filename))
        folder = _pull_hub(configured, model_dir, ignore=_transformers_ignore(configured))
        return PullResult(role, configured, "downloaded", str(folder))
    except ModelError as exc:
        return PullResult(role, configured, "failed", detail=str(exc))


def _pull_clip_text_tower(folder: Path, model_dir: Path) -> str:
    """Fetch the config/tokenizer of an HF text tower named in open_clip_config.json."""
    import json

    config = folder / "open_clip_config.json"
    try:
        text_cfg = json.loads(config.read_text(encoding="utf-8"))["model_cfg"]["text_cfg"]
    except (OSError, ValueError, KeyError):
        return ""
    fetched = []
    for name in {text_cfg.get("hf_model_name"), text_cfg.get("hf_tokenizer_name")} - {None, ""}:
        local = hub.local_hub_dir(model_dir, name)
        if (local / "config.json").is_file() or hub.cached_snapshot(name, "config.json"):
            continue
        _pull_hub(name, model_dir, allow=_TOKENIZER_FILES)
        fetched.append(name)
    return f"text tower files: {', '.join(sorted(fetched))}" if fetched else ""
