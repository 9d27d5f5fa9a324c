"""Settings of the selection step (mounted into `config.Settings` as `select`).

Imports pydantic only: the CLI loads settings at start-up and must not pull in a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SelectSettings(BaseModel):
    """Shortcut removal, Bloom levels, reasoning checks and difficulty-aware selection."""

    model_config = ConfigDict(extra="forbid")

    # ---- reasoning-quality checks (MMFineReason-style), no model needed
    reasoning_checks: bool = Field(True, description="Check every chain of thought.")
    cot_min_words: int = Field(12, ge=0, description="A shorter chain of thought fails.")
    cot_max_words: int = Field(350, ge=1, description="A longer chain of thought fails.")
    cot_required_parts: list[str] = Field(
        default_factory=lambda: ["Observation", "Reasoning"],
        description="Markers the CoT must contain, in this order, before its final "
        "'Answer: X' line (which is always required).",
    )
    ngram_size: int = Field(4, ge=2, le=12, description="n of the repeated-n-gram check.")
    max_ngram_repeats: int = Field(
        3, ge=1, description="An n-gram occurring more often than this is a degenerate loop."
    )
    regenerate_cot: bool = Field(
        True, description="Write a failing CoT once more before holding the item out."
    )
    # ---- image-free shortcut test and rewrite (RefineBot-like)
    shortcut_removal: bool = Field(True, description="Run the image-free test and rewrites.")
    image_free_attempts: int = Field(
        5, ge=1, le=32, description="Times a text-only model answers without image or caption."
    )
    image_free_temperature: float = Field(0.8, gt=0, le=2, description="Its temperature.")
    image_free_threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="A pass rate above this means the question is answerable from text alone.",
    )
    rewrite_rounds: int = Field(
        2, ge=0, le=5, description="Rewrites tried on an answerable question before flagging it."
    )
    shuffle_options: bool = Field(
        True,
        description="Show the options in a different order at each answering attempt, so a "
        "model's letter preference is not taken for a shortcut (or for skill).",
    )
    # ---- Bloom's taxonomy
    bloom: bool = Field(True, description="Classify each question's Bloom level.")
    bloom_use_llm: bool = Field(
        True, description="Ask the LLM (few-shot); the verb rule is the fallback and cross-check."
    )
    bloom_disagreement: int = Field(
        1, ge=0, le=5, description="LLM and rule may differ by this many levels without penalty."
    )
    bloom_confidence_penalty: float = Field(
        0.5, ge=0, le=1, description="Confidence is multiplied by this when they disagree more."
    )
    # ---- difficulty
    difficulty: bool = Field(True, description="Measure how often a small model solves each item.")
    difficulty_attempts: int = Field(5, ge=1, le=32, description="Answers per item (k).")
    difficulty_temperature: float = Field(0.7, gt=0, le=2, description="Their temperature.")
    difficulty_context: Literal["caption", "none"] = Field(
        "caption",
        description="What the text-only solver sees besides the question: the caption (standing "
        "in for the image) or nothing.",
    )
    never_max: float = Field(0.0, ge=0, le=1, description="Pass rate at or below: 'never' tier.")
    always_min: float = Field(1.0, ge=0, le=1, description="Pass rate at or above: 'always' tier.")
    # ---- selection policy
    policy: Literal["keep_all", "drop_always", "hardest"] = Field(
        "keep_all",
        description="keep_all; drop_always = hold out items the small model always solves; "
        "hardest = keep only the hardest `hardest_fraction`.",
    )
    hardest_fraction: float = Field(
        0.5, gt=0, le=1, description="Share kept by the 'hardest' policy (lowest pass rates)."
    )
    include_imported: bool = Field(
        True,
        description="Also check MCQs imported from other datasets (an audit); off: only those "
        "stage 3 generated.",
    )
    # ---- model calls
    answer_max_tokens: int = Field(8, ge=2, description="Tokens of one answer (a letter).")
    rewrite_max_tokens: int = Field(320, ge=32, description="Tokens of one rewrite.")
    cot_max_tokens: int = Field(256, ge=32, description="Tokens of one regenerated CoT.")
    seed: int = Field(0, description="Seed of all sampling in this step.")
    limit: int | None = Field(
        None, ge=1, description="Process at most this many not-yet-checked MCQs in one run."
    )
    batch_size: int = Field(8, ge=1, description="MCQs written back per batch.")
    prompt_dir: Path | None = Field(
        None, description="Folder of the prompt templates; empty = the shipped assets/prompts."
    )
