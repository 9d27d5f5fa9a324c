"""Stage 3's prompt templates and JSON schemas.

Templates use the same editable format as stage 1 (`## system` / `## user` sections,
`{{name}}` placeholders, HTML comments as notes); the loader is shared with stage 1.
"""

from __future__ import annotations

from pathlib import Path

from microvqa_tui.common.prompts import DEFAULT_PROMPT_DIR, PromptTemplate, load_template
from microvqa_tui.vocabulary import TASK_TYPES

# Bounds of the generated strings: a small model cannot loop forever inside one value.
MAX_QUESTION = 250
MAX_OPTION = 120
MAX_SENTENCE = 200
MAX_REASONING = 350
MAX_COT = 1500
SCHEMA_VERSION = "2"  # bump when generation_schema changes shape

GENERATE_TEMPLATE = "mcq_generate.md"
COT_TEMPLATE = "mcq_cot.md"

__all__ = [
    "DEFAULT_PROMPT_DIR",
    "PromptTemplate",
    "cot_schema",
    "generation_schema",
    "load",
    "options_block",
]


def load(name: str, prompt_dir: Path | None = None) -> PromptTemplate:
    return load_template(name, prompt_dir)


def generation_schema(n_choices: int, answer: str | None = None) -> dict:
    """The reply's schema. With `answer` (the QA's answer, pinned), the grammar makes the
    model write that text as the answer and as the first option, so it only writes the stem,
    the distractors and the reasoning; the checks stay the same."""
    free_option = {"type": "string", "minLength": 1, "maxLength": MAX_OPTION}
    if answer is None:
        answer_schema: dict = free_option
        options: dict = {
            "type": "array",
            "items": free_option,
            "minItems": n_choices,
            "maxItems": n_choices,
        }
    else:
        answer_schema = {"type": "string", "enum": [answer]}
        options = {
            "type": "array",
            "prefixItems": [answer_schema, *[free_option] * (n_choices - 1)],
            "minItems": n_choices,
            "maxItems": n_choices,
        }
    return {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION},
            "answer": answer_schema,
            "options": options,
            "observation": {"type": "string", "minLength": 1, "maxLength": MAX_SENTENCE},
            "reasoning": {"type": "string", "minLength": 1, "maxLength": MAX_REASONING},
            "conclusion": free_option,
            "task": {"type": "string", "enum": list(TASK_TYPES)},
        },
        "required": [
            "question",
            "answer",
            "options",
            "observation",
            "reasoning",
            "conclusion",
            "task",
        ],
    }


def cot_schema(choices: list[str]) -> dict:
    """A new chain of thought: observation, reasoning, and a conclusion that must be one of
    the options (so it can disagree with the key, but cannot name nothing)."""
    return {
        "type": "object",
        "properties": {
            "observation": {"type": "string", "minLength": 1, "maxLength": MAX_SENTENCE},
            "reasoning": {"type": "string", "minLength": 1, "maxLength": MAX_REASONING},
            "conclusion": {"type": "string", "enum": list(choices)},
        },
        "required": ["observation", "reasoning", "conclusion"],
    }


def options_block(choices: list[str]) -> str:
    from microvqa_tui.pipeline.stage3.cot import letter

    return "\n".join(f"{letter(i)}. {c}" for i, c in enumerate(choices))
