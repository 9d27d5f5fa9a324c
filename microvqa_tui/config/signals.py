"""Settings of the embed and signals steps (to be mounted into `config.Settings` as
`embed` and `signals`).

Imports pydantic only (not `config`, not the store): the CLI loads settings at start-up and
`config` imports this module to mount the sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from microvqa_tui.config.sections import Section

SIGNAL_FAMILIES = ("nli", "clip", "text", "agent", "pixel")
EMBED_SPACES = ("text_caption", "text_qa", "clip_image", "clip_caption", "clip_qa", "pixel_image")


class EmbedSettings(Section):
    """Which embedding spaces the embed step fills."""

    spaces: list[str] = Field(
        default_factory=lambda: list(EMBED_SPACES),
        description="Spaces to fill: " + ", ".join(EMBED_SPACES) + ".",
    )
    batch_size: int = Field(64, ge=1, description="Items encoded and written per batch.")


class SignalSettings(Section):
    """Which consistency signals are computed per QA, and how."""

    families: list[Literal["nli", "clip", "text", "agent", "pixel"]] = Field(
        default_factory=lambda: list(SIGNAL_FAMILIES),
        description="Signal families to compute: nli, clip, text, agent, pixel (the "
        "image_neighbour_caption_agreement of the model-free pixel descriptor and MiniLM).",
    )
    batch_size: int = Field(32, ge=1, description="QAs per batch (written together).")
    neighbour_k: int = Field(
        5,
        ge=1,
        description="image_neighbour_caption_agreement: how many nearest other figures (in "
        "the pixel_image space) a caption is compared with.",
    )
    limit: int = Field(0, ge=0, description="Process at most this many QAs per run (0 = all).")
    agent_source: Literal["auto", "caption", "image"] = Field(
        "auto",
        description="What the agent answers from: image = the vision LLM (models.vlm), caption "
        "= the text LLM; auto = image when a vision LLM is configured, else caption.",
    )
    agent_prompt_file: str = Field(
        "agent_answer.md", description="Prompt template of the agent's answer (assets/prompts)."
    )
    verdict_prompt_file: str = Field(
        "agent_verdict.md", description="Prompt template of the agent's supported yes/no verdict."
    )
    agent_max_tokens: int = Field(96, ge=8, description="Most tokens of the agent's answer.")
    agent_max_answer_chars: int = Field(
        240, ge=16, description="Longest agent answer the schema allows."
    )
    agreement: Literal["auto", "minilm", "token_f1"] = Field(
        "auto",
        description="agent_agreement measure: MiniLM cosine of the two answers (auto, when the "
        "text model is present) or token F1.",
    )
