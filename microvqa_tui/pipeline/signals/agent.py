"""The agent signals: the (M)LLM answers the question itself and judges the QA.

* `agent_agreement` — agreement of the agent's answer with the reference answer: the
  MiniLM cosine of the two answers when the text model is present, else token F1 (SQuAD
  style: lower-cased word overlap). The signal's `model` says which
  (`<llm>+<text model>` or `<llm>+token_f1`) and `detail` holds the agent's answer.
* `agent_supported` — the agent's own yes/no verdict (schema-constrained enum) on whether
  the caption supports the answer: 1.0 = yes, 0.0 = no.

The agent answers from the image (vision LLM, `signals.agent_source` = image/auto with
models.vlm set) or from the caption (text LLM).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from microvqa_tui.common.prompts import PromptTemplate
from microvqa_tui.models.client import LLMClient, LLMRequest, Sampling

_WORD = re.compile(r"\w+")
_ARTICLES = {"a", "an", "the"}


def answer_schema(max_chars: int) -> dict:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": max_chars}},
        "required": ["answer"],
        "additionalProperties": False,
    }


VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"supported": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["supported"],
    "additionalProperties": False,
}


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 of two short answers (lower-cased words, articles dropped)."""
    pred = [w for w in _WORD.findall(prediction.lower()) if w not in _ARTICLES]
    ref = [w for w in _WORD.findall(reference.lower()) if w not in _ARTICLES]
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass
class AgentResult:
    answer: str | None = None
    answer_error: str = ""
    supported: float | None = None
    verdict_error: str = ""
    tokens: int = 0
    seconds: float = 0.0


def ask_agent(
    llm: LLMClient,
    answer_template: PromptTemplate,
    verdict_template: PromptTemplate,
    *,
    question: str,
    answer: str,
    caption: str,
    image: Any = None,
    max_tokens: int = 96,
    max_answer_chars: int = 240,
    seed: int = 0,
) -> AgentResult:
    """Two structured calls: the agent's own answer, then its supported yes/no verdict."""
    result = AgentResult()
    values = {"caption": caption, "question": question, "answer": answer}
    messages = answer_template.messages(values)
    if image is not None:
        messages[-1] = {"role": "user", "content": answer_template.render("user image", values)}
    gen = llm.ask(
        LLMRequest(
            messages,
            answer_schema(max_answer_chars),
            images=(image,) if image is not None else (),
            sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=seed),
            purpose="agent_answer",
        )
    )
    result.tokens += gen.completion_tokens
    result.seconds += gen.seconds
    if gen.error:
        result.answer_error = gen.message or gen.error
    elif isinstance(gen.value, dict) and isinstance(gen.value.get("answer"), str):
        result.answer = " ".join(gen.value["answer"].split())
    else:
        result.answer_error = f"schema_invalid: {gen.raw[:200]}"

    gen = llm.ask(
        LLMRequest(
            verdict_template.messages(values),
            VERDICT_SCHEMA,
            sampling=Sampling(temperature=0.0, max_tokens=16, seed=seed),
            purpose="agent_verdict",
        )
    )
    result.tokens += gen.completion_tokens
    result.seconds += gen.seconds
    verdict = gen.value.get("supported") if isinstance(gen.value, dict) else None
    if gen.error:
        result.verdict_error = gen.message or gen.error
    elif verdict in ("yes", "no"):
        result.supported = 1.0 if verdict == "yes" else 0.0
    else:
        result.verdict_error = f"schema_invalid: {gen.raw[:200]}"
    return result
