"""A model answers an MCQ k times; the share of right answers is its pass rate.

Used by the image-free shortcut test (no image, no caption) and by difficulty estimation.
Each attempt samples with its own seed at a non-zero temperature. With `shuffle` the
options are shown in a different (seeded) order each time, so a model that always says "A"
scores chance, not 100% or 0%, and the rate measures the wording, not the position.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from microvqa_tui.common.prompts import PromptTemplate
from microvqa_tui.models.client import LLMClient, LLMRequest
from microvqa_tui.pipeline.stage3.cot import LETTERS, letter
from microvqa_tui.pipeline.stage3.generate import item_seed
from microvqa_tui.pipeline.stage3.prompts import options_block


@dataclass
class PassRate:
    attempts: int = 0
    correct: int = 0
    unusable: int = 0  # replies that named no option (count as wrong)
    picks: list[int] = field(default_factory=list)  # option index picked (-1 = none)

    @property
    def rate(self) -> float:
        return self.correct / self.attempts if self.attempts else 0.0

    def as_dict(self) -> dict:
        return {
            "attempts": self.attempts,
            "correct": self.correct,
            "unusable": self.unusable,
            "rate": round(self.rate, 4),
            "picks": self.picks,
        }


def answer_schema(n_choices: int) -> dict:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(LETTERS[:n_choices])}},
        "required": ["answer"],
    }


def picked_letter(data: object, n_choices: int) -> int | None:
    if not isinstance(data, dict):
        return None
    value = data.get("answer")
    if not isinstance(value, str):
        return None
    value = value.strip().strip("().").upper()
    if len(value) == 1 and value in LETTERS[:n_choices]:
        return LETTERS.index(value)
    return None


def pass_rate(
    llm: LLMClient,
    template: PromptTemplate,
    *,
    question: str,
    choices: list[str],
    correct_index: int,
    attempts: int,
    temperature: float,
    seed: int,
    key: str,
    purpose: str,
    shuffle: bool = True,
    extra: dict[str, str] | None = None,
    max_tokens: int = 8,
) -> PassRate:
    """Ask `attempts` times; count how often the pick is the correct option."""
    result = PassRate()
    n = len(choices)
    schema = answer_schema(n)
    for attempt in range(attempts):
        order = list(range(n))
        if shuffle:
            random.Random(f"{purpose}:{seed}:{key}:{attempt}").shuffle(order)
        shown = [choices[i] for i in order]
        messages = template.messages(
            {
                "question": question,
                "options": options_block(shown),
                "letters": ", ".join(letter(i) for i in range(n)),
                **(extra or {}),
            }
        )
        reply = llm.ask(
            LLMRequest.of(
                messages,
                schema,
                purpose=purpose,
                temperature=temperature,
                seed=item_seed(seed, f"{purpose}:{key}", attempt),
                max_tokens=max_tokens,
                retries=0,
            )
        )
        pick = picked_letter(reply.value, n) if reply.ok else None
        result.attempts += 1
        if pick is None:
            result.unusable += 1
            result.picks.append(-1)
            continue
        original = order[pick]
        result.picks.append(original)
        if original == correct_index:
            result.correct += 1
    return result
