"""Question + answer -> one declarative statement, for NLI against the caption.

Deterministic rewrite rules for the common question shapes ("What stain is used?" / "H&E"
-> "The stain used is H&E."); when none applies, a self-contained answer sentence is used
as it is, and otherwise question and answer are joined ("What …? A.").
"""

from __future__ import annotations

import re

_BE = r"(is|are|was|were)"
_MODAL = r"(would|could|should|can|might|may|will)"
_DET = ("the ", "a ", "an ", "these ", "this ", "those ", "that ", "its ", "their ")
_FUNCTION_WORDS = {
    "a", "an", "the", "in", "on", "at", "by", "with", "within", "along", "near", "inside",
    "outside", "through", "they", "it", "its", "their", "there", "from", "to", "as",
    "because", "due", "about", "around", "between", "across", "using", "into", "under",
    "over", "above", "below", "mostly", "mainly", "only", "both", "each", "several", "many",
    "few", "some", "most", "all", "one", "two", "three", "four", "five",
}  # fmt: skip
_PREPOSITIONS = ("with", "by", "in", "of", "on", "at", "for", "from", "to", "into", "as")
_FINITE_VERBS = re.compile(
    r"\b(is|are|was|were|has|have|had|shows?|showed|indicates?|suggests?|contains?|"
    r"reveals?|forms?|lies|lie|appears?|consists?|would|could|should|can|will|may|might)\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"^[A-Z][a-z]+$")
_PARTICIPLE = re.compile(r"^\w+(ed|en|wn|lt|ung|own)$", re.IGNORECASE)

_WHAT_BE = re.compile(rf"^(?:what|which)\s+{_BE}\s+(?P<x>.+)$", re.I)
_WHAT_NP_MODAL = re.compile(
    rf"^(?:what|which)\s+(?P<np>[\w\-]+(?:\s+[\w\-]+){{0,3}}?)\s+{_MODAL}\s+(?P<rest>.+)$", re.I
)
_WHAT_NP_BE = re.compile(
    rf"^(?:what|which)\s+(?P<np>[\w\-]+(?:\s+[\w\-]+){{0,3}}?)\s+{_BE}\s*(?P<rest>.*)$", re.I
)
_WHAT_DOES = re.compile(
    r"^(?:what|which)\s+(?:does|do)\s+(?P<x>.+?)\s+(?P<verb>[a-z]+)(?P<rest>(?:\s+(?:in|on|at|about|for|of|from|to|with)\b.*)?)$",
    re.I,
)
_WHERE = re.compile(
    rf"^where\s+{_BE}\s+(?P<x>.+?)(?P<part>\s+(?:located|found|seen|visible|present|situated))?$",
    re.I,
)
_VERBS = (
    "lie", "surround", "form", "show", "appear", "indicate", "contain", "line", "mark",
    "stain", "express", "label", "cover", "separate", "represent", "cause", "explain",
    "produce", "occupy", "point", "suggest", "reveal", "fill", "border", "extend", "run",
    "project", "remain", "accumulate", "localize", "localise", "bind", "emit", "surround",
)  # fmt: skip
_VERB_FORMS = {
    f for v in _VERBS for f in (v, v + "s", v + "es", v[:-1] + "ies" if v.endswith("y") else v)
}
_HOW_MANY = re.compile(rf"^how\s+many\s+(?P<np>.+?)\s+{_BE}\s+(?P<rest>.+)$", re.I)
_HOW_BE_PART = re.compile(rf"^how\s+{_BE}\s+(?P<x>.+?)\s+(?P<part>\w+)$", re.I)


def _clean_answer(answer: str) -> str:
    text = " ".join(answer.split()).strip()
    text = re.sub(r"^(the\s+)?answer\s+is[:\s]+", "", text, flags=re.I)
    return text.rstrip(" .;:!")


def _inline(answer: str) -> str:
    """The answer as it reads inside a sentence: a leading capitalised word (not an acronym
    or a mixed-case name such as HeLa) is lower-cased."""
    first = answer.split(" ", 1)[0]
    if first.lower() in _FUNCTION_WORDS or _CAPITALISED.match(first):
        return first[0].lower() + answer[1:]
    return answer


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip().rstrip(" .;:,")
    if not text:
        return ""
    return text[0].upper() + text[1:] + "."


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _is_sentence(answer: str) -> bool:
    return len(answer.split()) >= 5 and bool(_FINITE_VERBS.search(answer))


def to_statement(question: str, answer: str) -> str:
    """One declarative sentence saying what the QA says."""
    q = " ".join(question.split()).strip().rstrip("?.! ").strip()
    a = _clean_answer(answer)
    if not a:
        return _sentence(q)
    if not q:
        return _sentence(a)
    ai = _inline(a)
    yes_no = a.lower() in {"yes", "no"}

    if not yes_no:
        m = _WHAT_BE.match(q)
        if m:
            x = m.group("x")
            be = m.group(1).lower()
            if _PARTICIPLE.match(x.split(" ", 1)[0]):  # "What is shown in B?" -> "A is shown in B."
                return _sentence(f"{a} {be} {x}")
            return _sentence(f"{x} {be} {ai}")

        m = _WHAT_NP_MODAL.match(q)
        if m:  # "Which experiment would test X?" -> "The experiment that would test X is A."
            np, modal, rest = m.group("np"), m.group(2).lower(), m.group("rest")
            return _sentence(f"the {np} that {modal} {rest} is {ai}")

        m = _WHAT_DOES.match(q)
        if m:
            x, verb, rest = m.group("x"), m.group("verb").lower(), m.group("rest").strip()
            does = q.lower().split()[1] == "does"
            verb = _third_person(verb) if does else verb
            tail = f" {rest}" if rest else ""
            return _sentence(f"{x} {verb}{tail} {ai}")

        m = _WHAT_NP_BE.match(q)
        if m:
            np, be, rest = m.group("np"), m.group(2).lower(), m.group("rest").strip()
            if rest and rest.lower().startswith(_DET) and not rest.lower().endswith(_PREPOSITIONS):
                # "What colour are the nuclei?" / "Blue" -> "The nuclei are blue."
                return _sentence(f"{rest} {be} {ai}")
            elif rest and not rest.lower().endswith(_PREPOSITIONS):
                # "What stain is used?" / "H&E" -> "The stain used is H&E."
                return _sentence(f"the {np} {rest} {be} {ai}")

        words = q.split()
        if words[0].lower() in ("what", "which"):
            # "Which cells lie in the dermis?" / "Nevus cells" -> "Nevus cells lie in the dermis."
            for i in range(2, min(len(words) - 1, 5)):
                if words[i].lower() in _VERB_FORMS:
                    return _sentence(f"{a} {words[i].lower()} {' '.join(words[i + 1 :])}")

        m = _WHERE.match(q)
        if m:
            part = m.group("part") or ""
            return _sentence(f"{m.group('x')} {m.group(1).lower()}{part} {ai}")

        m = _HOW_MANY.match(q)
        if m:
            return _sentence(f"{a} {m.group('np')} {m.group(2).lower()} {m.group('rest')}")

        m = _HOW_BE_PART.match(q)
        if m and _PARTICIPLE.match(m.group("part")):
            return _sentence(f"{m.group('x')} {m.group(1).lower()} {m.group('part')} {ai}")

        if _is_sentence(a):
            return _sentence(a)

    return f"{_sentence(q)[:-1]}? {_sentence(a)}"
