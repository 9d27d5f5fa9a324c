"""Asking a model an MCQ and reading which option its reply picks."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from microvqa_tui.models.client import LLMClient, LLMRequest, Sampling
from microvqa_tui.pipeline.evaluate.items import EvalItem

if TYPE_CHECKING:  # annotations only
    from microvqa_tui.config import Settings

LETTERS = string.ascii_uppercase


# ============================================================================ prompting
SYSTEM_PROMPT = "You are an expert in biology and microscopy. You answer multiple-choice questions."


def build_prompt(item: EvalItem, with_image: bool) -> str:
    n = len(item.images)
    if with_image and n:
        intro = (
            "Look at the microscopy image" + ("s" if n > 1 else "") + " and answer the question."
        )
    else:
        intro = "Answer the question about a microscopy image (the image is not shown)."
    options = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(item.choices))
    return (
        f"{intro}\n\nQuestion: {item.question}\n\nOptions:\n{options}\n\n"
        f"Reply with the letter ({', '.join(LETTERS[: len(item.choices)])}) of the correct option."
    )


# ============================================================================ parsing
_TOKEN = r"[\(\[\*\s]*([A-Z]|\d{1,2})(?![\w-])[\)\]\*]?"
# Explicit answers first ("the answer is C", "Answer: 2"), then "option C" / "choice C";
# within each, the last one wins (a reasoning ends with its conclusion).
_MARKERS = [
    re.compile(
        r"(?:final\s+answer|correct\s+(?:answer|option|choice)|answer)\s*(?:is|:|=|-)?\s*(?:option\s+|choice\s+)?"
        + _TOKEN,
        re.I,
    ),
    re.compile(r"(?:option|choice)\s*(?:is|:)?\s*" + _TOKEN, re.I),
]
_LEADING = re.compile(r"^\s*[\(\[\*]*([A-Z])(?:[\)\]\.:\*]|\s*$|\s+[-–—]\s)")
_PAREN = re.compile(r"\(([A-Z])\)")
_BARE = re.compile(r"^\s*[\(\[\*]*([A-Z]|\d{1,2})[\)\]\.\*]*\s*$", re.I)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _token_to_index(token: str, n: int) -> int | None:
    if token.isdigit():
        value = int(token)
        return value - 1 if 1 <= value <= n else None
    index = LETTERS.find(token.upper())
    return index if 0 <= index < n else None


def parse_answer(text: str, choices: Sequence[str]) -> int | None:
    """The 0-based option a reply picks, or None when it cannot be told.

    Understood: "(B)", "B.", "B)", "B", "**B**", "Answer: B", "Answer: 2" (numbers are
    1-based), "the answer is C", "option C", "The correct answer is (C) ...", and the option's
    own text ("...is mitochondria"). Markers win over everything else (the last one, so a
    reasoning that ends with its answer is read correctly); a lone "A" starting a sentence
    ("A cell ...") is not read as option A.
    """
    if not text:
        return None
    n = len(choices)
    reply = text.strip()
    bare = _BARE.match(reply)
    if bare:
        return _token_to_index(bare.group(1), n)
    for pattern in _MARKERS:
        for match in reversed(list(pattern.finditer(reply))):
            token = match.group(1)
            after = reply[match.end(1) : match.end(1) + 1]
            # "the answer is a cell": a lower-case letter counts only when set off
            if (
                token.isalpha()
                and token.islower()
                and after not in ("", ")", "]", ".", ":", ",", "*")
            ):
                continue
            index = _token_to_index(token, n)
            if index is not None:
                return index
    leading = _LEADING.match(reply)
    if leading:
        index = _token_to_index(leading.group(1), n)
        if index is not None:
            return index
    parens = {m.group(1) for m in _PAREN.finditer(reply)}
    if len(parens) == 1:
        index = _token_to_index(parens.pop(), n)
        if index is not None:
            return index
    # The option's text itself: exact, else the only option contained in the reply.
    said = _norm(reply)
    normed = [_norm(c) for c in choices]
    for i, c in enumerate(normed):
        if c and said == c:
            return i
    contained = [i for i, c in enumerate(normed) if c and re.search(rf"\b{re.escape(c)}\b", said)]
    if len(contained) > 1:  # drop options contained in a longer contained one
        contained = [
            i for i in contained if not any(j != i and normed[i] in normed[j] for j in contained)
        ]
    if len(contained) == 1:
        return contained[0]
    return None


# ============================================================================ answerers
class Answerer(Protocol):
    name: str

    def answer(self, prompt: str, images: list[bytes]) -> str:
        """The model's reply to `prompt`, shown `images` (empty: no image)."""


class ModelAnswerer:
    """Answers through an LLM client (`models.registry` get_llm / get_vlm): free text,
    greedy (temperature 0) for reproducibility; images go with the prompt for a vision
    model. A failed call answers "" (counted as unparsed), so one item cannot stop a run."""

    def __init__(
        self,
        model: LLMClient,
        name: str | None = None,
        *,
        vision: bool = False,
        max_tokens: int = 96,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.vision = vision
        self.max_tokens = max_tokens
        self.seed = seed
        self.name = name or model.model_id

    def answer(self, prompt: str, images: list[bytes]) -> str:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ]
        request = LLMRequest(
            messages,
            None,
            images=tuple(images) if self.vision else (),
            sampling=Sampling(temperature=0.0, max_tokens=self.max_tokens, seed=self.seed),
            purpose="eval",
        )
        return self.model.ask(request).raw


def load_answerer(settings: Settings, role: str = "llm") -> ModelAnswerer:
    """The configured text LLM (role llm) or vision LLM (role vlm) as an Answerer."""
    from microvqa_tui.models import registry

    return ModelAnswerer(
        registry.get(role, settings),
        vision=role == "vlm",
        seed=settings.models.seed,
    )
