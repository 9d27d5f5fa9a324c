"""Checks of one generated MCQ (as the model wrote it, before the answer is re-placed).

Each failure is a short machine-readable reason (stored in quarantine) and a sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.pipeline.stage3.cot import final_answer_text, match_option, normalize, words
from microvqa_tui.vocabulary import (
    ANSWER_DIFFERS_FROM_QA,
    ANSWER_IN_QUESTION,
    ANSWER_NOT_IN_OPTIONS,
    BAD_OPTIONS,
    COT_OTHER_OPTION,
    DISTRACTOR_LENGTH,
    DUPLICATE_OPTIONS,
    ECHOED_PROMPT,
    EMPTY_COT,
    EMPTY_OPTION,
    EMPTY_QUESTION,
    NOT_AN_OBJECT,
    TASK_TYPES,
    WRONG_OPTION_COUNT,
)

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "and",
        "or",
        "with",
        "by",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "into",
        "than",
        "then",
        "which",
        "what",
        "who",
        "whom",
        "whose",
        "how",
        "why",
        "where",
        "when",
        "do",
        "does",
        "did",
        "not",
        "no",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
        "will",
        "shall",
        "their",
        "there",
        "they",
        "them",
    ]
)


@dataclass
class Draft:
    """A valid generation, options in the model's order."""

    question: str
    options: list[str]
    answer_index: int
    cot: str
    task: str
    notes: list[str] = field(default_factory=list)

    @property
    def answer(self) -> str:
        return self.options[self.answer_index]

    @property
    def distractors(self) -> list[str]:
        return [o for i, o in enumerate(self.options) if i != self.answer_index]


@dataclass
class Failure:
    reason: str  # a code of `vocabulary.MCQ_REASONS`
    detail: str  # the sentence shown to a person


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


ECHO_FIELDS = ("question", "observation", "reasoning", "conclusion", "cot")
ECHO_MIN_WORDS = 4
PREFIX_FIELDS = ("question", "option", "conclusion")
# A value starting with a field name ("reasoning: ...") is the model writing the JSON's
# layout into a string.
_FIELD_PREFIX = re.compile(
    r"^\s*(?:question|answer|options?|observation|reasoning|conclusion|task|cot)\s*:",
    re.IGNORECASE,
)


def _grams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def echoed_field(data: dict, instructions: str) -> str:
    """The name of a field that copies the instructions ("" when none): half or more of its
    word 4-grams occur in the template, or it starts with a field name."""
    if not instructions:
        return ""
    template = _grams(words(instructions), ECHO_MIN_WORDS)
    values = [(name, data.get(name)) for name in ECHO_FIELDS]
    values += [("option", o) for o in data.get("options") or [] if isinstance(o, str)]
    for name, value in values:
        if name in PREFIX_FIELDS and isinstance(value, str) and _FIELD_PREFIX.match(value):
            return name
        grams = _grams(words(value), ECHO_MIN_WORDS) if isinstance(value, str) else set()
        if grams and len(grams & template) >= len(grams) / 2:
            return name
    return ""


def assemble_cot(data: dict) -> str:
    """The CoT: the reply's `cot`, or `Observation / Reasoning / Answer` from its parts."""
    cot = _text(data.get("cot"))
    if cot:
        return cot
    observation, reasoning = _text(data.get("observation")), _text(data.get("reasoning"))
    if not (observation or reasoning):
        return ""
    conclusion = _text(data.get("conclusion"))
    lines = [f"Observation: {observation}", f"Reasoning: {reasoning}"]
    if conclusion:
        lines.append(f"Answer: {conclusion}")
    return "\n".join(lines)


def check_generation(
    data: Any,
    *,
    n_choices: int,
    qa_answer: str,
    qa_task: str,
    max_length_ratio: float = 4.0,
    instructions: str = "",
) -> Draft | Failure:
    """A `Draft` when the model's MCQ is usable, else the first `Failure` found.

    `instructions` is the prompt template's own text (placeholders unfilled): a field that
    copies it (small models echo "one sentence on what the image shows") fails.
    """
    if not isinstance(data, dict):
        return Failure(NOT_AN_OBJECT, f"expected a JSON object, got {type(data).__name__}")
    echo = echoed_field(data, instructions)
    if echo:
        return Failure(ECHOED_PROMPT, f"the {echo} copies the prompt's instructions")
    question = _text(data.get("question"))
    if not question:
        return Failure(EMPTY_QUESTION, "the question is missing or empty")
    options = _check_options(data.get("options"), n_choices)
    if isinstance(options, Failure):
        return options
    answer_index = _check_answer(_text(data.get("answer")), options, question, qa_answer)
    if isinstance(answer_index, Failure):
        return answer_index
    cot = _check_cot(data, options, answer_index)
    if isinstance(cot, Failure):
        return cot
    too_long = _check_lengths(options, options[answer_index], max_length_ratio)
    if too_long is not None:
        return too_long
    task, notes = _task(_text(data.get("task")), qa_task)
    return Draft(
        question=question,
        options=options,
        answer_index=answer_index,
        cot=cot,
        task=task,
        notes=notes,
    )


def _check_options(raw_options: Any, n_choices: int) -> list[str] | Failure:
    """The stripped options: `n_choices` distinct non-empty strings."""
    if not isinstance(raw_options, list) or not all(isinstance(o, str) for o in raw_options):
        return Failure(BAD_OPTIONS, "options must be a list of strings")
    options = [o.strip() for o in raw_options]
    if len(options) != n_choices:
        return Failure(
            WRONG_OPTION_COUNT, f"expected {n_choices} options, the model wrote {len(options)}"
        )
    if any(not o for o in options):
        return Failure(EMPTY_OPTION, "an option is empty")
    seen: dict[str, int] = {}
    for index, option in enumerate(options):
        key = normalize(option)
        if key in seen:
            return Failure(
                DUPLICATE_OPTIONS,
                f"options {seen[key] + 1} and {index + 1} are the same: {option!r}",
            )
        seen[key] = index
    return options


def _check_answer(
    answer_text: str, options: list[str], question: str, qa_answer: str
) -> int | Failure:
    """The correct option's index: one of the options, agreeing with the QA's answer, and
    not given away by the question."""
    answer_index = match_option(answer_text, options) if answer_text else None
    if answer_index is None:
        return Failure(
            ANSWER_NOT_IN_OPTIONS, f"the answer {answer_text!r} is not one of the options"
        )
    answer = options[answer_index]
    if (
        qa_answer
        and content_words(qa_answer)
        and not (content_words(answer) & content_words(qa_answer))
    ):
        return Failure(
            ANSWER_DIFFERS_FROM_QA,
            f"the correct option {answer!r} shares no content word with the QA's answer "
            f"{qa_answer!r}",
        )
    answer_words = content_words(answer)
    shared = answer_words & content_words(question)
    if len(answer_words) >= 2 and len(shared) >= 0.75 * len(answer_words):
        return Failure(
            ANSWER_IN_QUESTION,
            f"the question gives the answer away: it contains {answer!r}",
        )
    return answer_index


def _check_cot(data: dict, options: list[str], answer_index: int) -> str | Failure:
    """The chain of thought: present, and not ending on another option."""
    cot = assemble_cot(data)
    if not cot:
        return Failure(EMPTY_COT, "the chain of thought is missing or empty")
    named = final_answer_text(cot)
    if named:
        cot_index = match_option(named, options)
        if cot_index is not None and cot_index != answer_index:
            return Failure(
                COT_OTHER_OPTION,
                f"the chain of thought ends on option {options[cot_index]!r}, "
                f"not on the answer {options[answer_index]!r}",
            )
    return cot


def _check_lengths(options: list[str], answer: str, max_length_ratio: float) -> Failure | None:
    """A failure when an option's length in words gives the answer away (ratio 0: no check)."""
    if max_length_ratio <= 0:
        return None
    answer_len = max(1, len(words(answer)))
    for option in options:
        ratio = max(1, len(words(option))) / answer_len
        if ratio > max_length_ratio or ratio < 1 / max_length_ratio:
            return Failure(
                DISTRACTOR_LENGTH,
                f"option {option!r} is {ratio:.1f}× the answer's length in words "
                f"(limit {max_length_ratio:g}×): the length gives the answer away",
            )
    return None


def _task(task: str, qa_task: str) -> tuple[str, list[str]]:
    """The task type kept (the QA's when it is known) and notes on the model's choice."""
    notes = []
    if task and task not in TASK_TYPES:
        notes.append(f"model task {task!r} is not a known task type")
        task = ""
    if task and qa_task in TASK_TYPES and task != qa_task:
        notes.append(f"model task {task!r} differs from the QA's {qa_task!r}; kept the QA's")
    if qa_task in TASK_TYPES or not task:
        task = qa_task
    return task, notes
