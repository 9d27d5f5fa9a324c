"""Checks a generated QA must pass before it is kept; each returns keep + reason.

A failed check never drops the generation: the runner writes it to `quarantine` with the
reason code below, the detail and the model's output.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Reason codes (quarantine.reason, run counts), defined in the vocabulary; the runner and
# the tests use them as `checks.<CODE>`.
from microvqa_tui.vocabulary import (  # noqa: F401
    ANSWER_EMPTY,
    ANSWER_TOO_SHORT,
    COPIES_PROMPT,
    DUPLICATE_QUESTION,
    EVIDENCE_MISSING,
    EVIDENCE_NOT_IN_CAPTION,
    FIELD_TRUNCATED,
    GENERATION_FAILED,
    MODEL_TIMEOUT,
    QUESTION_COPIES_CAPTION,
    QUESTION_GENERIC,
    QUESTION_NOT_SINGLE,
    QUESTION_TOO_SHORT,
    SCHEMA_INVALID,
    UNPARSABLE,
)
from microvqa_tui.vocabulary import STAGE1_REASONS as REASONS  # noqa: F401

# Answers that say nothing about a figure, whatever their length.
TRIVIAL_ANSWERS = frozenset(
    {
        "yes",
        "no",
        "true",
        "false",
        "none",
        "n/a",
        "na",
        "unknown",
        "not stated",
        "not mentioned",
        "not specified",
        "not applicable",
        "answer",
        "the answer",
    }
)

_WORD = re.compile(r"\w+", re.UNICODE)
_INLINE_ANSWER = re.compile(r"(^|\s)(a|answer)\s*:", re.IGNORECASE)
# Words that say nothing about a particular figure (for the question_generic check).
GENERIC_WORDS = frozenset(
    """
    what which where when why how who whom whose does do did is are was were be been can could
    would should will may might shall must this that these those there here the a an of in on
    at to for from by with about into onto than then it its they them their you your we our
    image images figure figures picture panel panels shown show shows showing seen see visible
    look looks looking appear appears appearance most likely best explain explains explanation
    biological biology process processes cause causes reason reasons suggest suggests
    hypothesis interpret interpretation experiment experiments test tests testing would propose
    proposed measure measurement control controls study analysis determine observed observe
    structure structures type types kind feature features pattern patterns something thing
    things any some one two main other know like want describe described mean means one
    derived derive explain could based following information example answer question
    microscopy micrograph microscope
    """.split()  # noqa: SIM905
)

_EDGE_PUNCT = " \t\n\"'`“”‘’«».,;:!?()[]{}…-–—"
_DASHES = str.maketrans({"–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-"})
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "`": "'"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[(\"'“A-Z0-9])")


@dataclass(frozen=True)
class Check:
    keep: bool
    reason: str = ""
    detail: str = ""


KEEP = Check(True)


def normalize(text: str) -> str:
    """Casefolded, NFKC, one space between words, uniform dashes and quotes."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).translate(_QUOTES)
    return " ".join(text.casefold().split())


def tokens(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def question_key(question: str) -> str:
    """What makes two questions the same: their words, in order, ignoring case and punctuation."""
    return " ".join(tokens(question))


def split_sentences(text: str) -> list[str]:
    """The caption's sentences (a period followed by a capital, digit or bracket ends one)."""
    parts = [" ".join(p.split()) for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if p]


# ----------------------------------------------------------------------------- the checks
def check_schema(output: Any, task_type: str) -> tuple[Check, dict[str, str]]:
    """The output is an object with string question/answer/evidence (and the asked task type)."""
    if not isinstance(output, Mapping):
        return Check(
            False, SCHEMA_INVALID, f"expected a JSON object, got {type(output).__name__}"
        ), {}
    fields: dict[str, str] = {}
    problems = []
    for name in ("question", "answer", "evidence"):
        value = output.get(name)
        if not isinstance(value, str):
            problems.append(f"{name!r} missing or not a string")
        else:
            fields[name] = " ".join(value.split())
    got_task = output.get("task_type", task_type)
    if got_task != task_type:
        problems.append(f"task_type {got_task!r} instead of {task_type!r}")
    if problems:
        return Check(False, SCHEMA_INVALID, "; ".join(problems)), fields
    return KEEP, fields


def check_evidence(evidence: str, caption: str, *, min_chars: int = 3) -> Check:
    """The evidence is a span of the caption (normalised whitespace, case, dashes, quotes)."""
    span = normalize(evidence).strip(_EDGE_PUNCT)
    if len(span) < min_chars:
        return Check(False, EVIDENCE_MISSING, f"evidence {evidence!r} is empty or too short")
    if span not in normalize(caption):
        return Check(
            False, EVIDENCE_NOT_IN_CAPTION, f"evidence {evidence[:120]!r} is not in the caption"
        )
    return KEEP


def copy_overlap(question: str, caption: str, n: int = 3) -> tuple[float, int]:
    """(share of the question's word n-grams found in the caption, longest shared word run)."""
    q, c = tokens(question), tokens(caption)
    if not q or not c:
        return 0.0, 0
    size = min(n, len(q))
    q_grams = [tuple(q[i : i + size]) for i in range(len(q) - size + 1)]
    c_grams = {tuple(c[i : i + size]) for i in range(len(c) - size + 1)}
    share = sum(g in c_grams for g in q_grams) / len(q_grams)
    # Longest common run of words (dynamic programming over the two token lists).
    longest, previous = 0, [0] * (len(c) + 1)
    for qi in range(len(q)):
        current = [0] * (len(c) + 1)
        for ci in range(len(c)):
            if q[qi] == c[ci]:
                current[ci + 1] = previous[ci] + 1
                longest = max(longest, current[ci + 1])
        previous = current
    return share, longest


def _stem(word: str) -> str:
    return word[:5]


def check_question(
    question: str,
    caption: str,
    *,
    min_words: int = 3,
    max_overlap: float = 0.75,
    max_copied_run: int = 12,
) -> Check:
    """The question is one question about this figure, in its own words.

    Rejected: fewer than `min_words` words; several questions or an inline answer
    ("… ? A: …", or sentences after the question mark); a generic question that names nothing of the caption (no content word
    shared, compared on 5-letter stems); a copy of the caption — most of its word trigrams
    occur in the caption (`max_overlap`) or it repeats a long run of caption words
    (`max_copied_run`).
    """
    words = tokens(question)
    if len(words) < min_words:
        return Check(False, QUESTION_TOO_SHORT, f"question {question!r} has {len(words)} words")
    after = question.rsplit("?", 1)[1] if "?" in question else ""
    if question.count("?") > 1 or _INLINE_ANSWER.search(question) or len(after.split()) >= 3:
        return Check(
            False, QUESTION_NOT_SINGLE, "several questions, or an answer inside the question"
        )
    content = {_stem(w) for w in words if w not in GENERIC_WORDS and not w.isdigit()}
    caption_stems = {_stem(w) for w in tokens(caption)}
    if not content & caption_stems:
        return Check(False, QUESTION_GENERIC, "the question names nothing that is in the caption")
    share, run = copy_overlap(question, caption)
    if len(words) > 3 and share >= max_overlap:
        return Check(
            False,
            QUESTION_COPIES_CAPTION,
            f"{share:.0%} of the question's word trigrams are in the caption",
        )
    if run >= max_copied_run:
        return Check(
            False, QUESTION_COPIES_CAPTION, f"the question repeats {run} caption words in a row"
        )
    return KEEP


def check_not_prompt_copy(
    question: str, answer: str, prompt: str, *, max_overlap: float = 0.75
) -> Check:
    """Neither the question nor the answer repeats the prompt's instructions (without the
    caption): a small model often echoes "Ask about something visible in the image…"."""
    if not prompt.strip():
        return KEEP
    for name, text in (("question", question), ("answer", answer)):
        if len(tokens(text)) < 4:
            continue
        share, _ = copy_overlap(text, prompt)
        if share >= max_overlap:
            return Check(
                False, COPIES_PROMPT, f"{share:.0%} of the {name}'s word trigrams are in the prompt"
            )
    return KEEP


def check_answer(answer: str, *, min_chars: int = 2) -> Check:
    """The answer says something: not empty, not a bare yes/no/unknown, not a character or two."""
    text = normalize(answer).strip(_EDGE_PUNCT)
    letters = sum(ch.isalnum() for ch in text)
    if letters == 0:
        return Check(False, ANSWER_EMPTY, "the answer is empty")
    if letters < min_chars or text in TRIVIAL_ANSWERS:
        return Check(False, ANSWER_TOO_SHORT, f"the answer {answer!r} is trivially short")
    return KEEP


def check_duplicate(question: str, seen: Iterable[str], *, max_jaccard: float = 0.9) -> Check:
    """No other question of the same figure has the same words (or nearly: word-set Jaccard)."""
    key = question_key(question)
    words = set(key.split())
    for other in seen:
        if other == key:
            return Check(False, DUPLICATE_QUESTION, "the figure already has this question")
        other_words = set(other.split())
        union = words | other_words
        if union and max_jaccard < 1.0 and len(words & other_words) / len(union) >= max_jaccard:
            return Check(
                False, DUPLICATE_QUESTION, f"near-duplicate of an existing question: {other!r}"
            )
    return KEEP


@dataclass(frozen=True)
class CheckLimits:
    min_evidence_chars: int = 3
    min_question_words: int = 3
    max_copy_overlap: float = 0.75
    max_copied_run: int = 12
    min_answer_chars: int = 2
    duplicate_jaccard: float = 0.9
    max_field_chars: int = 0  # 0 = no truncation check
    bounded_fields: tuple[str, ...] = ("question", "answer", "evidence")  # have maxLength


def trim_truncated(text: str, max_chars: int) -> str:
    """A field cut at the schema's maxLength, trimmed to its complete sentences ("" if none).

    Text below the limit is returned unchanged.
    """
    if not max_chars or len(text) < max_chars:
        return text
    sentences = split_sentences(text)
    complete = [s for s in sentences[:-1] if s.endswith((".", "!", "?"))]
    return " ".join(complete)


def check_truncated(fields: dict[str, str], max_chars: int) -> Check:
    """No field reached the schema's maxLength (the grammar then cuts it mid-sentence)."""
    cut = [name for name, value in fields.items() if max_chars and len(value) >= max_chars]
    if cut:
        return Check(
            False, FIELD_TRUNCATED, f"{', '.join(sorted(cut))} reached {max_chars} characters"
        )
    return KEEP


def run_checks(
    fields: dict[str, str],
    caption: str,
    seen: Iterable[str],
    limits: CheckLimits,
    prompt: str = "",
) -> list[Check]:
    """Every failing check of one schema-valid QA (empty = keep), in a fixed order.

    `prompt` is the prompt's text without the caption (for the copies_prompt check).
    """
    results = [
        check_truncated(
            {k: v for k, v in fields.items() if k in limits.bounded_fields},
            limits.max_field_chars,
        ),
        check_evidence(fields["evidence"], caption, min_chars=limits.min_evidence_chars),
        check_question(
            fields["question"],
            caption,
            min_words=limits.min_question_words,
            max_overlap=limits.max_copy_overlap,
            max_copied_run=limits.max_copied_run,
        ),
        check_not_prompt_copy(
            fields["question"], fields["answer"], prompt, max_overlap=limits.max_copy_overlap
        ),
        check_answer(fields["answer"], min_chars=limits.min_answer_chars),
        check_duplicate(fields["question"], seen, max_jaccard=limits.duplicate_jaccard),
    ]
    return [r for r in results if not r.keep]
