"""Text vectors for near-duplicate captions and questions.

Preferred: the sentence-embedding model of `models.registry.get_text` (MiniLM by default),
or vectors already stored in an `emb_text*` table for exactly these items. When the text
model is missing, character n-gram TF-IDF vectors are used instead, and the report says so
(`TextVectors.note`) — the fallback is never silent. The two backends have different
similarity scales, hence a threshold per backend (`DedupSettings`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from microvqa_tui.errors import ModelError, ModelMissingError
from microvqa_tui.progress import NullProgress, ProgressReporter

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

TFIDF_DIM = 4096  # hashed feature space of the fallback (signed hashing keeps dots unbiased)
TFIDF_NGRAMS = (3, 4, 5)


@dataclass
class TextVectors:
    vectors: np.ndarray  # (n, d) float32, unit rows
    backend: str  # minilm | stored:<table> | tfidf
    model: str  # model name, or the TF-IDF recipe
    note: str = ""  # why a fallback was used (empty when the model was used)


# ---------------------------------------------------------------------------- TF-IDF
_SPACE = re.compile(r"\s+")


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", text).strip()


def _gram_hash(gram: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


def tfidf_vectors(texts: Sequence[str], *, dim: int = TFIDF_DIM, ngrams=TFIDF_NGRAMS) -> np.ndarray:
    """Character n-gram TF-IDF (sublinear tf, smoothed idf), hashed into `dim` signed
    buckets and L2-normalised. Dense float32 (n × dim): bounded, and searchable with the same
    blocked matrix products as model embeddings."""
    docs: list[dict[str, int]] = []
    df: dict[str, int] = {}
    for text in texts:
        padded = f" {_normalize(text)} "
        counts: dict[str, int] = {}
        for n in ngrams:
            for i in range(max(0, len(padded) - n + 1)):
                gram = padded[i : i + n]
                counts[gram] = counts.get(gram, 0) + 1
        docs.append(counts)
        for gram in counts:
            df[gram] = df.get(gram, 0) + 1
    n_docs = max(len(docs), 1)
    cache: dict[str, tuple[int, float]] = {}
    out = np.zeros((len(docs), dim), np.float32)
    for row, counts in enumerate(docs):
        for gram, count in counts.items():
            slot = cache.get(gram)
            if slot is None:
                slot = cache[gram] = _gram_hash(gram, dim)
            idf = np.log((1 + n_docs) / (1 + df[gram])) + 1.0
            out[row, slot[0]] += slot[1] * (1.0 + np.log(count)) * idf
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


# ---------------------------------------------------------------------------- model
def load_text_encoder(settings: Settings) -> Any:
    """The text embedding model from `models.registry.get_text`; raises ModelMissingError
    (with the registry's message) when it is not available."""
    from microvqa_tui.models import registry

    return registry.get_text(settings)


def encode_with(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """Call whichever encode API the encoder has; returns unit float32 rows."""
    texts = list(texts)
    if hasattr(encoder, "encode"):
        try:
            vectors = encoder.encode(texts, normalize_embeddings=True)
        except TypeError:
            vectors = encoder.encode(texts)
    elif hasattr(encoder, "embed"):
        vectors = encoder.embed(texts)
    elif callable(encoder):
        vectors = encoder(texts)
    else:
        raise ModelError(f"text encoder {type(encoder).__name__} has no encode/embed method")
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().numpy()
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _model_name(encoder: Any, settings: Settings) -> str:
    for attr in ("name", "model_name", "model_id"):
        value = getattr(encoder, attr, None)
        if isinstance(value, str) and value:
            return value
    return settings.models.text or type(encoder).__name__


def text_vectors(
    texts: Sequence[str],
    settings: Settings,
    *,
    backend: str = "auto",
    encoder: Any = None,
    progress: ProgressReporter | None = None,
) -> TextVectors:
    """Vectors for `texts`. backend: auto (model, else TF-IDF with a note) | model | tfidf.

    `encoder` short-circuits the registry (tests, or a caller that already has the model).
    """
    progress = progress or NullProgress()
    if backend == "tfidf":
        progress.start("caption/question TF-IDF vectors", None)
        return TextVectors(tfidf_vectors(texts), "tfidf", _tfidf_recipe(), "")
    try:
        if encoder is None:
            encoder = load_text_encoder(settings)
        progress.start("text embeddings", len(texts))
        out = []
        for start in range(0, len(texts), 512):
            out.append(encode_with(encoder, texts[start : start + 512]))
            progress.advance(min(512, len(texts) - start))
        vectors = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
        return TextVectors(vectors, "minilm", _model_name(encoder, settings))
    except ModelMissingError as exc:
        if backend == "model":
            raise
        note = (
            f"text model missing ({exc}); near-duplicate text found with character n-gram "
            "TF-IDF cosine instead (less robust to paraphrase)"
        )
        progress.log(note)
        return TextVectors(tfidf_vectors(texts), "tfidf", _tfidf_recipe(), note)


def _tfidf_recipe() -> str:
    return f"char-{min(TFIDF_NGRAMS)}-{max(TFIDF_NGRAMS)}gram-tfidf-hashed{TFIDF_DIM}"
