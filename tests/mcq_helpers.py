"""Helpers of the stage 3 / selection tests: QA rows written with the store API, and a
scripted fake LLM that answers each kind of call (MCQ, answer, Bloom, rewrite, check, CoT)
and counts the calls."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from microvqa_tui.models.client import ScriptedClient
from microvqa_tui.vocabulary import TASK_TYPES
from store import text_id
from store.schema import utcnow

ANSWERS = [
    "Basal layer of the epidermis",
    "Nests of nevus cells",
    "Collagen bundles of the dermis",
    "Mitochondria in the cytoplasm",
    "Actin stress fibres",
    "Nuclei stained with DAPI",
    "Dividing cells in metaphase",
    "Capillaries in the papillary dermis",
]
DISTRACTORS = [
    "Granular layer of the skin",
    "Clusters of red cells",
    "Elastic fibres of the vessel",
    "Lipid droplets in the stroma",
]


def add_qas(
    store,
    n: int,
    *,
    status: str = "kept",
    figures: int = 4,
    start: int = 0,
) -> list[dict]:
    """`n` QAs (and their captions) about `figures` figures, written with the store API."""
    captions, qas = [], []
    for f in range(figures):
        figure_id = f"fig{f:03d}"
        text = f"Figure {f}: H&E section of human skin; nests of nevus cells in the mid dermis."
        captions.append(
            {
                "caption_id": text_id(figure_id, text),
                "figure_id": figure_id,
                "text": text,
                "created_at": utcnow(),
            }
        )
    for i in range(start, start + n):
        cap = captions[i % figures]
        question = f"Question {i}: what structure is marked by the arrow in panel {i}?"
        answer = ANSWERS[i % len(ANSWERS)]
        qas.append(
            {
                "qa_id": text_id(cap["figure_id"], question, answer),
                "figure_id": cap["figure_id"],
                "caption_id": cap["caption_id"],
                "question": question,
                "answer": answer,
                "task_type": TASK_TYPES[i % 3],
                "origin": "stage1",
                "status": status,
                "created_at": utcnow(),
            }
        )
    store.insert_new("captions", captions)
    store.insert_new("qas", qas)
    return qas


def purpose_of(schema: dict) -> str:
    props = schema.get("properties", {})
    if "options" in props:
        return "mcq"
    if "reflection" in props:
        return "rewrite"
    if "same_answer" in props:
        return "check"
    if "level" in props:
        return "bloom"
    if "answer" in props:
        return "answer"
    if "cot" in props or "observation" in props:
        return "cot"
    return "unknown"


def prompt_field(messages: list[dict], name: str) -> str:
    """The value of a `Name: value` line in the last user message."""
    text = messages[-1]["content"]
    match = re.search(rf"^{re.escape(name)}:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def shown_options(messages: list[dict]) -> list[str]:
    text = messages[-1]["content"]
    return re.findall(r"^[A-H]\. (.+)$", text, re.MULTILINE)


def good_mcq(messages: list[dict]) -> dict:
    """A valid MCQ reply for the QA in the prompt: the answer first, three distractors."""
    answer = prompt_field(messages, "Correct answer")
    question = prompt_field(messages, "Question")
    return {
        "question": f"In this image, {question[0].lower()}{question[1:]}",
        "options": [answer, *DISTRACTORS[:3]],
        "answer": answer,
        "cot": (
            "Observation: the image shows a layered tissue with a marked structure. "
            f"Reasoning: its position and staining fit {answer.lower()}. Answer: {answer}"
        ),
        "task": prompt_field(messages, "Task type") or TASK_TYPES[0],
    }


class ScriptedLLM(ScriptedClient):
    """A fake LLM client: `script[purpose](messages, schema, options)` gives the reply (a dict,
    a raw string, or an exception to raise). Every call is recorded."""

    def __init__(self, **script: Callable[..., Any]) -> None:
        super().__init__(self._answer, "scripted-fake")
        self.script: dict[str, Callable[..., Any]] = {
            "mcq": lambda m, s, o: good_mcq(m),
            "answer": lambda m, s, o: {"answer": "A"},
            "bloom": lambda m, s, o: {"level": 2, "confidence": 0.8},
            "rewrite": lambda m, s, o: {
                "reflection": "the distractors were implausible",
                "question": "Which structure does the arrow mark in this image?",
                "distractors": ["Granular cell layer", "Spinous cell layer", "Horny cell layer"][
                    : s["properties"]["distractors"]["minItems"]
                ],
            },
            "check": lambda m, s, o: {"same_answer": True, "reason": "same"},
            "cot": lambda m, s, o: {
                "observation": "The image shows the marked structure clearly.",
                "reasoning": "Its shape and staining match the key and none of the others.",
                "conclusion": next(
                    c
                    for c in s["properties"]["conclusion"]["enum"]
                    if prompt_field(m, "Correct option").endswith(c)
                ),
            },
        }
        self.script.update(script)
        self.calls: list[tuple[str, list[dict], dict]] = []
        self.schemas: list[dict] = []

    def _answer(self, request):
        purpose = purpose_of(request.schema)
        s = request.sampling
        options = {"temperature": s.temperature, "seed": s.seed, "max_tokens": s.max_tokens}
        self.calls.append((purpose, request.messages, options))
        self.schemas.append(request.schema)
        return self.script[purpose](request.messages, request.schema, options)

    def count(self, purpose: str | None = None) -> int:
        if purpose is None:
            return len(self.calls)
        return sum(1 for p, _, _ in self.calls if p == purpose)

    def counts(self) -> Counter:
        return Counter(p for p, _, _ in self.calls)


def correct_letter_answerer(messages, schema, options) -> dict:
    """Answers with the letter of the option that the prompt's MCQ keys as correct
    (the test keeps the correct answers in ANSWERS)."""
    shown = shown_options(messages)
    for index, option in enumerate(shown):
        if option in ANSWERS:
            return {"answer": "ABCDEFGH"[index]}
    return {"answer": "A"}


def wrong_letter_answerer(messages, schema, options) -> dict:
    shown = shown_options(messages)
    for index, option in enumerate(shown):
        if option not in ANSWERS:
            return {"answer": "ABCDEFGH"[index]}
    return {"answer": "A"}


def all_mcqs(store, where: str | None = None) -> list[dict]:
    total = store.count("mcqs", where)
    return store.page("mcqs", where=where, limit=max(total, 1)) if total else []


def quarantine_rows(store, stage: str = "mcq") -> list[dict]:
    where = f"stage = '{stage}'"
    total = store.count("quarantine", where)
    return store.page("quarantine", where=where, limit=max(total, 1)) if total else []
