"""Language-shortcut removal, RefineBot-like (MicroVQA).

A text-only model answers the MCQ without image and caption k times. If it is right more
often than `image_free_threshold`, the question is rewritten: the model reflects on why it
was answerable and writes a new stem and new distractors (the correct answer's text and
position stay), a second call checks that the rewrite asks the same thing with the same
answer, and the image-free test runs again. Up to `rewrite_rounds` rounds; the version
with the lowest image-free pass rate is kept, and an item still above the threshold is
flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.common.prompts import PromptTemplate
from microvqa_tui.config.select import SelectSettings
from microvqa_tui.models.client import LLMClient, LLMRequest
from microvqa_tui.pipeline.select.answering import PassRate, pass_rate
from microvqa_tui.pipeline.stage3.cot import normalize, words
from microvqa_tui.pipeline.stage3.generate import item_seed
from microvqa_tui.pipeline.stage3.positions import place
from microvqa_tui.pipeline.stage3.prompts import MAX_OPTION, MAX_QUESTION, options_block


@dataclass
class Version:
    question: str
    choices: list[str]
    rate: PassRate


@dataclass
class ShortcutResult:
    rate: float
    answerable: bool  # still above the threshold after the rewrites
    question: str
    choices: list[str]
    rewritten: bool
    rounds: list[dict[str, Any]] = field(default_factory=list)
    first_rate: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate, 4),
            "first_rate": round(self.first_rate, 4),
            "answerable": self.answerable,
            "rewritten": self.rewritten,
            "rounds": self.rounds,
        }


def rewrite_schema(n_distractors: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "reflection": {"type": "string", "maxLength": 400},
            "question": {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION},
            "distractors": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_OPTION},
                "minItems": n_distractors,
                "maxItems": n_distractors,
            },
        },
        "required": ["reflection", "question", "distractors"],
    }


def check_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "same_answer": {"type": "boolean"},
            "reason": {"type": "string", "maxLength": 200},
        },
        "required": ["same_answer", "reason"],
    }


def rewrite_problem(data: Any, answer: str, n_distractors: int) -> str:
    """Why a rewrite is unusable ("" when it is usable)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    question = data.get("question")
    distractors = data.get("distractors")
    if not isinstance(question, str) or not question.strip():
        return "empty question"
    if not isinstance(distractors, list) or not all(isinstance(d, str) for d in distractors):
        return "distractors are not a list of strings"
    cleaned = [d.strip() for d in distractors]
    if len(cleaned) != n_distractors:
        return f"{len(cleaned)} distractors instead of {n_distractors}"
    keys = [normalize(d) for d in cleaned]
    if any(not k for k in keys):
        return "an empty distractor"
    if len(set(keys)) != len(keys):
        return "duplicate distractors"
    if normalize(answer) in keys:
        return "a distractor repeats the correct answer"
    if normalize(question) and normalize(answer) in normalize(question) and len(words(answer)) > 1:
        return "the question contains the answer"
    return ""


class ShortcutRemover:
    def __init__(
        self,
        llm: LLMClient,
        cfg: SelectSettings,
        answer_template: PromptTemplate,
        rewrite_template: PromptTemplate,
        check_template: PromptTemplate,
    ) -> None:
        self.llm, self.cfg = llm, cfg
        self.answer_t, self.rewrite_t, self.check_t = (
            answer_template,
            rewrite_template,
            check_template,
        )

    def image_free(self, key: str, question: str, choices: list[str], correct: int) -> PassRate:
        cfg = self.cfg
        return pass_rate(
            self.llm,
            self.answer_t,
            question=question,
            choices=choices,
            correct_index=correct,
            attempts=cfg.image_free_attempts,
            temperature=cfg.image_free_temperature,
            seed=cfg.seed,
            key=key,
            purpose="image_free",
            shuffle=cfg.shuffle_options,
            max_tokens=cfg.answer_max_tokens,
        )

    def run(self, mcq: dict) -> ShortcutResult:
        cfg = self.cfg
        key, correct = mcq["mcq_id"], mcq["correct_index"]
        answer = mcq["choices"][correct]
        first = self.image_free(key, mcq["question"], mcq["choices"], correct)
        best = current = Version(mcq["question"], list(mcq["choices"]), first)
        rounds: list[dict[str, Any]] = []
        for number in range(1, cfg.rewrite_rounds + 1):
            if best.rate.rate <= cfg.image_free_threshold:
                break
            entry: dict[str, Any] = {"round": number, "rate_before": round(current.rate.rate, 4)}
            rounds.append(entry)
            candidate = self.rewrite(key, number, current, answer, correct, entry)
            if candidate is None:
                continue
            candidate.rate = self.image_free(
                f"{key}:r{number}", candidate.question, candidate.choices, correct
            )
            entry["rate_after"] = round(candidate.rate.rate, 4)
            current = candidate
            if candidate.rate.rate < best.rate.rate:
                best = candidate
        answerable = best.rate.rate > cfg.image_free_threshold
        return ShortcutResult(
            rate=best.rate.rate,
            answerable=answerable,
            question=best.question,
            choices=best.choices,
            rewritten=(best.question, best.choices) != (mcq["question"], list(mcq["choices"])),
            rounds=rounds,
            first_rate=first.rate,
        )

    def rewrite(
        self,
        key: str,
        number: int,
        current: Version,
        answer: str,
        correct: int,
        entry: dict[str, Any],
    ) -> Version | None:
        cfg = self.cfg
        n_distractors = len(current.choices) - 1
        rate = current.rate
        reply = self.llm.ask(
            LLMRequest.of(
                self.rewrite_t.messages(
                    {
                        "question": current.question,
                        "options": options_block(current.choices),
                        "answer": answer,
                        "rate": f"{rate.correct} of {rate.attempts}",
                        "n_distractors": n_distractors,
                    }
                ),
                rewrite_schema(n_distractors),
                purpose="rewrite",
                temperature=0.7,
                seed=item_seed(cfg.seed, f"rewrite:{key}", number),
                max_tokens=cfg.rewrite_max_tokens,
                retries=0,
            )
        )
        if not reply.ok:
            entry["rejected"] = f"unparsable rewrite: {reply.message}"[:300]
            return None
        problem = rewrite_problem(reply.value, answer, n_distractors)
        if problem:
            entry["rejected"] = problem
            return None
        question = reply.value["question"].strip()
        distractors = [d.strip() for d in reply.value["distractors"]]
        entry["reflection"] = str(reply.value.get("reflection", ""))[:500]
        verdict = self.llm.ask(
            LLMRequest.of(
                self.check_t.messages(
                    {"original": current.question, "rewritten": question, "answer": answer}
                ),
                check_schema(),
                purpose="rewrite_check",
                temperature=0.0,
                seed=item_seed(cfg.seed, f"check:{key}", number),
                max_tokens=96,
                retries=0,
            )
        )
        same = verdict.ok and isinstance(verdict.value, dict) and verdict.value.get("same_answer")
        if same is not True:
            reason = verdict.value.get("reason", "") if verdict.ok else verdict.message
            entry["rejected"] = f"meaning check failed: {str(reason)[:200]}"
            return None
        entry["question"] = question
        entry["distractors"] = distractors
        return Version(question, place(answer, distractors, correct), PassRate())
