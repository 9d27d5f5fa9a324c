"""Options and the final answer of a chain of thought: matching text to an option, letters.

A CoT is expected to end on a line `Answer: (C) <option text>`. Models write the letter, the
text, or both; `match_option` maps what they wrote to an option index, or None when it names
no option (or more than one).
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase

_ANSWER = re.compile(r"(?:final\s+)?answer\s*(?:is)?\s*[:：]\s*", re.IGNORECASE)
_LEADING_LETTER = re.compile(r"^\s*(?:option\s+)?\(?([A-Ha-h])\)?\s*(?:[.):\-–]\s*|$)")
_PUNCT = re.compile(r"[^\w\s]")


def letter(index: int) -> str:
    return LETTERS[index]


def normalize(text: str) -> str:
    """Lower-case words without punctuation: the form options are compared in."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def words(text: str) -> list[str]:
    return normalize(text).split()


def final_answer_text(cot: str) -> str | None:
    """What follows the last `Answer:` of the CoT (one line), or None when there is none."""
    matches = list(_ANSWER.finditer(cot or ""))
    if not matches:
        return None
    tail = cot[matches[-1].end() :].strip()
    return tail.splitlines()[0].strip() if tail else ""


def match_option(answer: str, choices: list[str]) -> int | None:
    """The index of the option `answer` names (by letter or by text), None when unclear."""
    if answer is None:
        return None
    text = answer.strip().strip("*").strip()
    norm = normalize(text)
    normalized = [normalize(c) for c in choices]
    if norm:
        exact = [i for i, c in enumerate(normalized) if c == norm]
        if len(exact) == 1:
            return exact[0]
    lead = _LEADING_LETTER.match(text)
    if lead:
        index = LETTERS.index(lead.group(1).upper())
        rest = normalize(text[lead.end() :])
        if index < len(choices) and (not rest or _names(rest, normalized[index])):
            return index
    if not norm:
        return None
    contained = [i for i, c in enumerate(normalized) if c and (c in norm or norm in c)]
    if len(contained) == 1:
        return contained[0]
    # Best word overlap, when clearly better than every other option.
    scores = [_overlap(norm, c) for c in normalized]
    best = max(range(len(choices)), key=scores.__getitem__, default=None)
    if best is None or scores[best] < 0.6:
        return None
    if sum(1 for s in scores if s >= scores[best] - 0.1) > 1:
        return None
    return best


def _names(text: str, option: str) -> bool:
    return text == option or text in option or option in text or _overlap(text, option) >= 0.6


def _overlap(a: str, b: str) -> float:
    sa, sb = set(a.split()), set(b.split())
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


def answer_line(index: int, choices: list[str]) -> str:
    return f"Answer: ({letter(index)}) {choices[index]}"


def with_final_answer(cot: str, index: int, choices: list[str]) -> str:
    """The CoT with its last `Answer:` line rewritten to `Answer: (X) text` (appended if absent)."""
    cot = (cot or "").rstrip()
    matches = list(_ANSWER.finditer(cot))
    line = answer_line(index, choices)
    if not matches:
        return f"{cot}\n{line}" if cot else line
    start = matches[-1].start()
    end = cot.find("\n", matches[-1].end())
    rest = "" if end < 0 else cot[end:]
    return (cot[:start] + line + rest).rstrip()
