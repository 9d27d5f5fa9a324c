"""Settings of stage 1 (to be mounted into `config.Settings` as `stage1`).

Imports pydantic only (not `config`, not the store): the CLI loads settings at start-up and
`config` imports this module to mount the section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from microvqa_tui.config.sections import Section
from microvqa_tui.vocabulary import TASK_TYPES


class Stage1Settings(Section):
    """How the local LLM turns captions into QA pairs, and which QAs are kept."""

    prompt_dir: Path | None = Field(
        None, description="Folder of the prompt templates; empty = the repository's assets/prompts."
    )
    prompt_file: str = Field("stage1_qa.md", description="Template of the stage-1 prompt.")
    task_types: list[str] = Field(
        default_factory=lambda: list(TASK_TYPES),
        description="Task types asked for, one LLM call each per caption.",
    )
    qas_per_task: int = Field(1, ge=1, le=10, description="QA pairs asked for per task type.")
    evidence: Literal["span", "sentence"] = Field(
        "sentence",
        description="sentence = the model picks one of the caption's sentences (decoding is "
        "constrained to them: a small model cannot copy a span reliably); span = it copies a "
        "phrase of the caption, checked afterwards (for stronger models).",
    )
    batch_size: int = Field(4, ge=1, description="Captions per batch (written together).")
    limit: int = Field(0, ge=0, description="Process at most this many captions per run (0 = all).")
    max_caption_chars: int = Field(
        2000, ge=50, description="Longer captions are cut in the prompt."
    )
    max_tokens: int = Field(256, ge=32, description="Most tokens generated per call.")
    max_field_chars: int = Field(
        200,
        ge=20,
        description="Longest question/answer/evidence the schema allows (stops runaways).",
    )
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    repeat_penalty: float = Field(
        1.1, ge=1, le=2, description="llama.cpp repeat penalty (curbs a small model's loops)."
    )
    min_evidence_chars: int = Field(3, ge=1, description="Shorter evidence is 'evidence_missing'.")
    min_question_words: int = Field(3, ge=1, description="Shorter questions are rejected.")
    max_copy_overlap: float = Field(
        0.75,
        gt=0,
        le=1,
        description="Questions with this share of caption word trigrams are copies.",
    )
    max_copied_run: int = Field(
        12, ge=3, description="Questions repeating this many caption words in a row are copies."
    )
    min_answer_chars: int = Field(2, ge=1, description="Answers with fewer letters are trivial.")
    duplicate_jaccard: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Word-set Jaccard at which two questions of a figure are duplicates.",
    )

    @field_validator("task_types")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in TASK_TYPES]
        if unknown:
            raise ValueError(f"unknown task types {unknown}; known: {', '.join(TASK_TYPES)}")
        if not value:
            raise ValueError("at least one task type is needed")
        return list(dict.fromkeys(value))
