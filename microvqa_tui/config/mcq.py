"""Settings of stage 3, MCQ generation (mounted into `config.Settings` as `mcq`).

Imports pydantic only: the CLI loads settings at start-up and must not pull in a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MCQSettings(BaseModel):
    """How kept QA pairs become multiple-choice questions with a chain of thought."""

    model_config = ConfigDict(extra="forbid")

    n_choices: int = Field(4, ge=2, le=8, description="Options per question (one is correct).")
    max_attempts: int = Field(
        3, ge=1, le=10, description="Generations per QA at most; failed attempts go to quarantine."
    )
    temperature: float = Field(
        0.3, ge=0, le=2, description="Sampling temperature of the first attempt."
    )
    retry_temperature_step: float = Field(
        0.2, ge=0, le=1, description="Added to the temperature at each further attempt."
    )
    repeat_penalty: float = Field(
        1.1,
        ge=1,
        le=2,
        description="Penalty on repeated tokens (small models loop inside a string without it).",
    )
    max_tokens: int = Field(384, ge=64, description="Most tokens the model may write per MCQ.")
    seed: int = Field(0, description="Seed of sampling and of the answer-position assignment.")
    qa_source: Literal["kept", "auto", "kept+pending"] = Field(
        "auto",
        description="Which QAs become MCQs: kept = only those the graph kept; auto = kept ones, "
        "or the pending ones while the graph step has not judged any QA (the report says so); "
        "kept+pending = both.",
    )
    model_role: Literal["llm", "vlm"] = Field(
        "llm", description="Which configured model writes the MCQs (models.llm or models.vlm)."
    )
    pin_answer: bool = Field(
        True,
        description="The correct option is the QA's answer word for word, enforced by the "
        "output grammar (the model writes stem, distractors and reasoning); false lets the "
        "model phrase the answer (then checked against the QA's).",
    )
    max_length_ratio: float = Field(
        4.0,
        ge=0,
        description="A distractor more than this many times longer or shorter (in words) than "
        "the answer fails the item (a length cue gives the answer away); 0 = no check.",
    )
    max_caption_chars: int = Field(
        1200, ge=100, description="Caption text given to the model is cut to this length."
    )
    limit: int | None = Field(
        None, ge=1, description="Generate for at most this many QAs in one run (demos, benchmarks)."
    )
    retry_quarantined: bool = Field(
        False,
        description="Try again QAs whose attempts all failed with the current prompt and model "
        "(by default a re-run skips them, as it skips those that have an MCQ).",
    )
    batch_size: int = Field(8, ge=1, description="MCQs written to the store per batch.")
    prompt_dir: Path | None = Field(
        None, description="Folder of the prompt templates; empty = the shipped assets/prompts."
    )
