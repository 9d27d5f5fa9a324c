"""Which model fills each role, and one lazily loaded copy per process.

Roles: clip (image/text embeddings), nli (entailment), text (sentence embeddings), llm (text
generation), vlm (vision generation). A stage asks for a role and never sees checkpoints or
devices:

    clip = registry.get_clip(settings)    # loads once, then returns the same object
    ...
    registry.release()                    # at the end of the stage: frees RAM / GPU memory

`resolve(role, settings)` gives the local path or raises ModelMissingError saying which
model is missing and the one command that gets it (`locate`). `status` / `model_status`
(`inventory`) and `pull` (`pull`) are re-exported here, so callers need one module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microvqa_tui.errors import ModelError
from microvqa_tui.models import ROLES
from microvqa_tui.models import device as devices
from microvqa_tui.models.cache import cached, loaded, release
from microvqa_tui.models.inventory import human_size, model_status, role_device, server_row, status
from microvqa_tui.models.locate import (
    PACKAGES,
    ROLE_HELP,
    SMOLLM_PACKAGE,
    Resolved,
    describe,
    model_id,
    models_section,
    present_model,
    resolve,
    server_settings,
    smollm_gguf,
)
from microvqa_tui.models.pull import PullResult, pull

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.models.locate import ModelSource

__all__ = [
    "LOADERS",
    "PACKAGES",
    "ROLES",
    "ROLE_HELP",
    "SMOLLM_PACKAGE",
    "PullResult",
    "Resolved",
    "client_id",
    "describe",
    "get",
    "get_clip",
    "get_llm",
    "get_nli",
    "get_server",
    "get_text",
    "get_vlm",
    "human_size",
    "loaded",
    "model_status",
    "models_section",
    "pull",
    "release",
    "resolve",
    "role_device",
    "server_row",
    "server_settings",
    "smollm_gguf",
    "status",
    "stored_model_id",
]


def stored_model_id(role: str, settings: ModelSource = None) -> str:
    """The id `role`'s model stores with its outputs, known without loading it (as a
    distributed run's driver needs); ModelMissingError when the model is absent."""
    return model_id(present_model(role, models_section(settings)))


def get_clip(settings: ModelSource = None) -> Any:
    """The CLIP model (`clip.ClipModel`), loaded on first use."""
    from microvqa_tui.models.clip import load_clip

    ms = models_section(settings)
    r = present_model("clip", ms)
    dev = devices.resolve_device(ms.device)
    key = ("clip", r.load_spec, dev, ms.batch_size)
    return cached(
        key,
        lambda: load_clip(
            r.load_spec,
            device=dev,
            model_dir=Path(ms.model_dir).expanduser(),
            batch_size=ms.batch_size,
            model_id=model_id(r),
        ),
    )


def _get_local_folder_model(role: str, load: Callable[..., Any], settings: ModelSource) -> Any:
    """A model loaded from a local folder by `load(path, device=, batch_size=, model_id=)`."""
    ms = models_section(settings)
    r = present_model(role, ms)
    dev = devices.resolve_device(ms.device)
    key = (role, r.load_spec, dev, ms.batch_size)
    return cached(
        key, lambda: load(r.path, device=dev, batch_size=ms.batch_size, model_id=model_id(r))
    )


def get_nli(settings: ModelSource = None) -> Any:
    """The NLI classifier (`nli.NliModel`), loaded on first use."""
    from microvqa_tui.models.nli import load_nli

    return _get_local_folder_model("nli", load_nli, settings)


def get_text(settings: ModelSource = None) -> Any:
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


def get_server(settings: ModelSource = None, *, vision: bool = False) -> Any:
    """The OpenAI-compatible server client (`server.ServerClient`), one per settings."""
    from microvqa_tui.models.server import ServerClient

    cfg = server_settings(settings)
    if cfg is None:
        raise ModelError(
            "no LLM server is configured", hint="set MICROVQA_MODELS__SERVER__BASE_URL"
        )
    key = ("vlm" if vision else "llm", "server", tuple(sorted(cfg.model_dump().items())))
    return cached(
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


def get_llm(settings: ModelSource = None) -> Any:
    """The text LLM client: the configured server, else the in-process GGUF
    (`llm.LlamaModel`), loaded on first use."""
    from microvqa_tui.models.llm import load_llm

    if server_settings(settings) is not None:
        return get_server(settings)
    ms = models_section(settings)
    r = present_model("llm", ms)
    kwargs = _llama_kwargs(ms)
    key = ("llm", str(r.path), tuple(sorted(kwargs.items())))
    return cached(key, lambda: load_llm(r.path, model_id=model_id(r), **kwargs))


def get_vlm(settings: ModelSource = None) -> Any:
    """The vision LLM client: the configured server when it is marked `vision`, else the
    in-process GGUF with its projector, loaded on first use."""
    from microvqa_tui.models.llm import load_llm

    server = server_settings(settings)
    if server is not None and server.vision:
        return get_server(settings, vision=True)
    ms = models_section(settings)
    r = present_model("vlm", ms)
    kwargs = _llama_kwargs(ms)
    handler = getattr(ms, "vlm_chat_handler", "auto")
    key = ("vlm", str(r.path), str(r.mmproj), handler, tuple(sorted(kwargs.items())))
    return cached(
        key,
        lambda: load_llm(
            r.path, mmproj=r.mmproj, chat_handler=handler, model_id=model_id(r), **kwargs
        ),
    )


LOADERS: dict[str, Callable[[Any], Any]] = {
    "clip": get_clip,
    "nli": get_nli,
    "text": get_text,
    "llm": get_llm,
    "vlm": get_vlm,
}


def client_id(role: str, settings: ModelSource = None) -> tuple[str, Any]:
    """(model id, client or None) of an LLM role (`llm`, `vlm`) without loading a model: a
    server client is cheap (an HTTP client), so it is made; an in-process GGUF is only
    named (a distributed run's driver need not load it)."""
    server = server_settings(settings)
    if server is not None and (role == "llm" or server.vision):
        client = get(role, settings)
        return client.model_id, client
    return stored_model_id(role, settings), None


def get(role: str, settings: ModelSource = None) -> Any:
    if role not in LOADERS:
        raise ModelError(f"unknown model role '{role}'", hint=f"roles: {', '.join(ROLES)}")
    return LOADERS[role](settings)
