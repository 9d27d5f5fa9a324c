"""Hugging Face Hub folders: where pulled models live, cache look-ups, and downloads.

Pulled models are plain folders `<model_dir>/<org>--<name>/` (snapshot_download with
`local_dir`), so they can be copied between machines. A model already in the user's
Hugging Face cache is used from there. `huggingface_hub` is imported lazily.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from microvqa_tui.errors import ModelError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_repo_id(value: str) -> bool:
    """`org/name` that is not an existing local path."""
    return bool(_REPO_ID.match(value)) and not Path(value).expanduser().exists()


def local_hub_dir(model_dir: Path, repo_id: str) -> Path:
    return Path(model_dir).expanduser() / repo_id.replace("/", "--")


def cached_snapshot(repo_id: str, required: str | None = None) -> Path | None:
    """The snapshot folder of `repo_id` in the Hugging Face cache, if present (no network)."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None
    if required is not None and not (folder / required).exists():
        return None
    return folder


def offline_reason() -> str | None:
    """Why the Hub cannot be reached, or None when it looks reachable."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy decides; let the download try
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as exc:
        why = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        return f"offline? cannot reach {host}:{port} ({why})"


def download(
    repo_id: str,
    dest: Path,
    *,
    allow_patterns: list[str] | None = None,
    ignore_patterns: list[str] | None = None,
) -> Path:
    """snapshot_download `repo_id` into `dest`; ModelError with the reason when it fails."""
    reason = offline_reason()
    if reason is not None:
        raise ModelError(
            f"cannot download {repo_id}: {reason}",
            hint=f"pull on a machine with internet access and copy the folder to {dest}, "
            "or point the setting at a local copy",
        )
    from huggingface_hub import snapshot_download

    try:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - older huggingface_hub
        GatedRepoError = RepositoryNotFoundError = ()  # type: ignore[assignment]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return Path(
            snapshot_download(
                repo_id,
                local_dir=str(dest),
                allow_patterns=allow_patterns,
                ignore_patterns=ignore_patterns,
            )
        )
    except GatedRepoError as exc:
        raise ModelError(
            f"{repo_id} is gated on the Hub: {exc}",
            hint="accept its terms on huggingface.co and log in (`hf auth login`)",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelError(f"{repo_id} does not exist on the Hub (or is private)") from exc
    except Exception as exc:
        raise ModelError(f"cannot download {repo_id}: {exc.__class__.__name__}: {exc}") from exc
