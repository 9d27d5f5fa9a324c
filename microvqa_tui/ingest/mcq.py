"""Imported multiple-choice items: cleaning choices and deciding a file's index convention.

Published sets differ: `correct_index` is 0- or 1-based, choices may carry "1) " / "A. "
labels, and `correct_answer` may be the bare text, the labelled text or the label alone.
The convention is decided once per FILE from every row (a per-row guess would silently
mis-key the rows where both readings fit), and a file whose rows fit no single convention is
refused with the first row that disagrees.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from microvqa_tui.errors import ValidationError

_LABEL = re.compile(r"^\s*[\(\[]?([A-Za-z]|\d{1,2})[\)\]\.:]\s*(?=\S)")


@dataclass(slots=True, frozen=True)
class RowProblem:
    detail: str


def parse_choices(choices: Any, index: Any) -> tuple[list[str], int] | RowProblem:
    """The row's choices as strings and its index as int, or what is wrong with them.
    Choices stored as a JSON list in a string column (some exports do that) are accepted."""
    if isinstance(choices, str) and choices.lstrip().startswith("["):
        try:
            choices = json.loads(choices)
        except ValueError:
            return RowProblem("choices is a string that is not a JSON list")
    if isinstance(choices, str | bytes) or not isinstance(choices, list | tuple):
        return RowProblem(f"choices must be a list of strings, got {type(choices).__name__}")
    if len(choices) < 2:
        return RowProblem(f"need at least 2 choices, got {len(choices)}")
    if not all(isinstance(c, str) and c.strip() for c in choices):
        return RowProblem("every choice must be a non-empty string")
    if isinstance(index, bool) or index is None:
        return RowProblem(f"correct_index must be an integer, got {index!r}")
    if isinstance(index, float) and index.is_integer():
        index = int(index)
    if isinstance(index, str) and index.strip().lstrip("-").isdigit():
        index = int(index.strip())
    if not isinstance(index, int):
        return RowProblem(f"correct_index must be an integer, got {index!r}")
    return list(choices), index


def strip_labels(choices: list[str]) -> tuple[list[str], bool]:
    """Choices without their enumeration labels ("1) ", "A. ", "(b) "), when EVERY choice
    carries the next label of one sequence (1, 2, 3… / 0, 1, 2… / A, B, C…); otherwise
    unchanged, so a choice that merely starts like a label ("5. µm") is kept whole."""
    labels: list[str] = []
    bodies: list[str] = []
    for choice in choices:
        match = _LABEL.match(choice)
        if match is None:
            return [c.strip() for c in choices], False
        labels.append(match.group(1))
        bodies.append(choice[match.end() :].strip())
    if all(label.isdigit() for label in labels):
        start = int(labels[0])
        sequential = start in (0, 1) and all(
            int(label) == start + i for i, label in enumerate(labels)
        )
    elif all(label.isalpha() for label in labels):
        sequential = all(label.lower() == chr(ord("a") + i) for i, label in enumerate(labels))
    else:
        sequential = False
    if not sequential:
        return [c.strip() for c in choices], False
    return bodies, True


def _norm(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    return text.rstrip(". ")


def answer_matches(answer: str, raw_choice: str, choice: str, position: int) -> bool:
    """Whether `answer` names the choice at 0-based `position` (text, labelled text or label)."""
    wanted = _norm(answer)
    if wanted in (_norm(choice), _norm(raw_choice)):
        return True
    match = _LABEL.match(answer)
    if match is not None and _norm(answer[match.end() :]) == _norm(choice):
        return True
    bare = re.sub(r"^[\(\[]|[\)\]\.:]$", "", wanted)
    return bare in (str(position + 1), chr(ord("a") + position)) if position < 26 else False


def _row_issue(
    raw: list[str], choices: list[str], index: int, answer: str, base: int
) -> str | None:
    """Why the row does not fit `base`-based indexing, or None when it does."""
    position = index - base
    if not 0 <= position < len(choices):
        return f"correct_index {index} is out of range for {len(choices)} choices when {base}-based"
    if answer and not answer_matches(answer, raw[position], choices[position], position):
        return (
            f"correct_index {index} ({base}-based) points to choice {choices[position]!r}, "
            f"but correct_answer is {answer!r}"
        )
    return None


@dataclass(slots=True)
class IndexConvention:
    base: int  # 0 or 1: subtract from correct_index to get the position
    rows: int  # rows that decided it
    ambiguous: bool  # every row fitted both readings; 0-based was assumed


def decide_index_base(rows: Iterable[tuple[int, Any, Any, Any]], source: str) -> IndexConvention:
    """Decide whether `correct_index` is 0- or 1-based for a whole file.

    `rows` yields (row number, choices, correct_index, correct_answer). Malformed rows are
    skipped here (the reader quarantines them). Raises ValidationError naming the file, the
    first disagreeing row and what disagrees when no single convention fits every row.
    """
    fits = {0: 0, 1: 0}
    first_issue: dict[int, tuple[int, str] | None] = {0: None, 1: None}
    total = 0
    for row_no, raw_choices, raw_index, raw_answer in rows:
        parsed = parse_choices(raw_choices, raw_index)
        if isinstance(parsed, RowProblem):
            continue
        raw, index = parsed
        choices, _ = strip_labels(raw)
        answer = raw_answer.strip() if isinstance(raw_answer, str) else ""
        if isinstance(raw_answer, int) and not isinstance(raw_answer, bool):
            answer = str(raw_answer)
        total += 1
        for base in (0, 1):
            issue = _row_issue(raw, choices, index, answer, base)
            if issue is None:
                fits[base] += 1
            elif first_issue[base] is None:
                first_issue[base] = (row_no, issue)
    if total == 0:
        return IndexConvention(base=0, rows=0, ambiguous=True)
    if fits[0] == total:
        return IndexConvention(base=0, rows=total, ambiguous=fits[1] == total)
    if fits[1] == total:
        return IndexConvention(base=1, rows=total, ambiguous=False)
    best = 0 if fits[0] >= fits[1] else 1
    other = 1 - best
    row_no, issue = first_issue[best] or (0, "")
    raise ValidationError(
        f"{source}: row {row_no}: {issue}. correct_index, choices and correct_answer "
        f"disagree: {fits[best]} of {total} rows fit {best}-based indexing and "
        f"{fits[other]} fit {other}-based, so the file has no single convention",
        hint="fix the row(s) or drop the file; nothing from this file was ingested",
    )


def correct_position(index: int, base: int) -> int:
    return index - base
