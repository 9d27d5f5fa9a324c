"""Dedup settings: thresholds per kind and backend, neighbour counts, search method.

`Settings.dedup` is used when the settings carry one (a `[dedup]` TOML table / MICROVQA_DEDUP__*
variables once registered in config.py); otherwise these defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # `config` imports this module to mount the section
    from microvqa_tui.config import Settings


class DedupSettings(BaseModel):
    clip_threshold: float = Field(
        0.95,
        ge=-1,
        le=1,
        description="CLIP image-embedding cosine at or above which two figures are near-duplicates.",
    )
    hash_threshold: float = Field(
        0.85,
        ge=0,
        le=1,
        description="Fraction of the 128 perceptual-hash bits (pHash+dHash) that must agree between one "
        "image and the best-matching crop window of the other.",
    )
    text_threshold: float = Field(
        0.90,
        ge=-1,
        le=1,
        description="Text-embedding (MiniLM) cosine for near-duplicate captions/questions.",
    )
    tfidf_threshold: float = Field(
        0.70,
        ge=-1,
        le=1,
        description="Character n-gram TF-IDF cosine used when the text model is missing.",
    )
    neighbours: int = Field(20, ge=1, description="Neighbours examined per item (embeddings).")
    hash_neighbours: int = Field(64, ge=1, description="Hash windows examined per image.")
    method: Literal["auto", "exact", "ann"] = Field(
        "auto", description="auto: exact on a GPU or below ann_min_rows, LanceDB index above."
    )
    ann_min_rows: int = Field(
        200_000, ge=1, description="CPU stores at least this large use the LanceDB index."
    )
    ann_index: Literal["IVF_PQ", "IVF_HNSW_SQ"] = Field(
        "IVF_HNSW_SQ", description="LanceDB index type."
    )
    memory_mb: int = Field(
        256, ge=16, description="Working memory of one block of the exact search."
    )
    crop_windows: bool = Field(
        True, description="Hash crop windows too (catches cropped copies; ~73 hashes per image)."
    )


def dedup_settings(settings: Settings, **overrides: Any) -> DedupSettings:
    """`settings.dedup` with a command's overrides (None: keep the setting), validated."""
    values = settings.dedup.model_dump()
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DedupSettings(**values)
