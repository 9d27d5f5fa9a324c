"""Reasoning-quality checks of a chain of thought (as MMFineReason filters its CoTs).

Each check returns a failure (a reason code and a sentence) or nothing:
- cot_length: the CoT has fewer than `cot_min_words` or more than `cot_max_words` words;
- cot_structure: the required parts (default Observation → Reasoning) are missing or out
  of order, or there is no final `Answer: X` line;
- cot_repetition: an n-gram occurs more than `max_ngram_repeats` times (a degenerate loop);
- cot_answer: the final answer names another option than the key, or no option at all.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from microvqa_tui.config.select import SelectSettings
from microvqa_tui.pipeline.stage3.cot import final_answer_text, letter, match_option, words
from microvqa_tui.vocabulary import (
    COT_ANSWER,
    COT_LENGTH,
    COT_REPETITION,
    COT_STRUCTURE,
)


@dataclass(frozen=True)
class CheckFailure:
    reason: str  # one of `vocabulary.SELECT_REASONS`
    detail: str

    def text(self) -> str:
        return f"{self.reason}: {self.detail}"


def check_length(cot: str, cfg: SelectSettings) -> CheckFailure | None:
    n = len(cot.split())
    if n < cfg.cot_min_words:
        return CheckFailure(COT_LENGTH, f"{n} words, fewer than {cfg.cot_min_words}")
    if n > cfg.cot_max_words:
        return CheckFailure(COT_LENGTH, f"{n} words, more than {cfg.cot_max_words}")
    return None


def check_structure(cot: str, cfg: SelectSettings) -> CheckFailure | None:
    position = 0
    lowered = cot.lower()
    for part in cfg.cot_required_parts:
        match = re.compile(rf"\b{re.escape(part.lower())}\b").search(lowered, position)
        if match is None:
            where = "" if position == 0 else " after the previous part"
            return CheckFailure(COT_STRUCTURE, f"no '{part}' part{where}")
        position = match.end()
    if final_answer_text(cot[position:]) is None:
        return CheckFailure(COT_STRUCTURE, "no final 'Answer: X' line")
    return None


def repeated_ngram(text: str, n: int) -> tuple[str, int]:
    """The most frequent word n-gram of `text` and its count (("", 0) when too short)."""
    tokens = words(text)
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    if not grams:
        return "", 0
    gram, count = grams.most_common(1)[0]
    return " ".join(gram), count


def check_repetition(cot: str, cfg: SelectSettings) -> CheckFailure | None:
    gram, count = repeated_ngram(cot, cfg.ngram_size)
    if count > cfg.max_ngram_repeats:
        return CheckFailure(
            COT_REPETITION,
            f"'{gram}' occurs {count} times (at most {cfg.max_ngram_repeats} allowed)",
        )
    return None


def check_answer(cot: str, choices: list[str], correct_index: int) -> CheckFailure | None:
    named = final_answer_text(cot)
    if named is None:
        return None  # reported by the structure check
    index = match_option(named, choices)
    key = f"({letter(correct_index)}) {choices[correct_index]!r}"
    if index is None:
        return CheckFailure(COT_ANSWER, f"final answer {named!r} names no option; key is {key}")
    if index != correct_index:
        return CheckFailure(
            COT_ANSWER,
            f"final answer is ({letter(index)}) {choices[index]!r}, the key is {key}",
        )
    return None


def check_cot(
    cot: str, choices: list[str], correct_index: int, cfg: SelectSettings
) -> list[CheckFailure]:
    """Every failed check of `cot` (empty when it passes)."""
    cot = cot or ""
    found = [
        check_length(cot, cfg),
        check_structure(cot, cfg),
        check_repetition(cot, cfg),
        check_answer(cot, choices, correct_index),
    ]
    return [f for f in found if f is not None]
