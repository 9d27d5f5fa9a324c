"""Bloom's-taxonomy level of a question: an LLM classifier with a verb rule as fallback and
cross-check.

Levels (as MicroVQA reports them): 1 recall, 2 comprehension, 3 application, 4 analysis,
5 synthesis/creation, 6 evaluation. The rule looks for cue verbs and phrases; when several
match, the highest level wins (a question that asks to "identify ... and justify" is an
evaluation). With no cue, the task type decides (e.g. experiment proposal -> synthesis).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from microvqa_tui.vocabulary import BLOOM_LEVELS

# Cue phrases per level (regular expressions on the lower-cased question).
CUES: dict[int, tuple[str, ...]] = {
    1: (
        r"\bidentify\b",
        r"\bname\b",
        r"\blist\b",
        r"\blabel(?:l?ed)?\b",
        r"\bdefine\b",
        r"\brecall\b",
        r"\bwhat is (?:the )?(?:name|stain|structure|organelle|color|colour|scale)\b",
        r"^which (?:stain|structure|organelle|cell type|layer|tissue|marker|dye|channel)\b",
        r"^what (?:stain|structure|organelle|cell type|layer|tissue|marker|dye|colou?r)\b",
        r"^where\b",
        r"\bhow many\b",
    ),
    2: (
        r"\bdescribe\b",
        r"\bexplain\b",
        r"\bsummari[sz]e\b",
        r"\binterpret\b",
        r"\bclassify\b",
        r"\bwhat does .* (?:indicate|show|represent|mean|suggest)\b",
        r"\bwhat do .* (?:indicate|show|represent|mean|suggest)\b",
        r"\bwhat is shown\b",
        r"\bcharacteri[sz]e\b",
    ),
    3: (
        r"\bapply\b",
        r"\bcalculate\b",
        r"\bestimate\b",
        r"\bcompute\b",
        r"\bpredict\b",
        r"\bhow would .* (?:use|change|look|appear)\b",
        r"\bwhat would happen\b",
        r"\bgiven the scale\b",
    ),
    4: (
        r"\banaly[sz]e\b",
        r"\bcompare\b",
        r"\bcontrast\b",
        r"\bdistinguish\b",
        r"\bdifferentiate\b",
        r"\bwhy\b",
        r"\binfer\b",
        r"\bwhat (?:explains|causes|accounts for)\b",
        r"\brelationship\b",
        r"\bmost likely (?:cause|explanation|reason|mechanism)\b",
    ),
    5: (
        r"\bdesign\b",
        r"\bpropose\b",
        r"\bhypothes[ie][sz]e?\b",
        r"\bformulate\b",
        r"\bdevelop\b",
        r"\bplan\b",
        r"\bconstruct\b",
        r"\bwhich (?:experiment|assay|control|approach|method|measurement)\b",
        r"\bwhat (?:experiment|assay|control|approach|method|measurement)\b",
        r"\bhow (?:could|would|might) .* (?:test|determine|verify|measure|confirm)\b",
        r"\bnext step\b",
    ),
    6: (
        r"\bevaluate\b",
        r"\bjustify\b",
        r"\bassess\b",
        r"\bjudge\b",
        r"\bcritique\b",
        r"\bbest supported\b",
        r"\bstrongest evidence\b",
        r"\bmost (?:appropriate|valid|convincing|reliable)\b",
        r"\bwhich (?:interpretation|conclusion) is\b",
    ),
}
_COMPILED = {level: [re.compile(p) for p in patterns] for level, patterns in CUES.items()}

# With no cue, the task type gives the likely level.
TASK_PRIOR = {
    "expert_visual_understanding": 2,
    "hypothesis_generation": 4,
    "experiment_proposal": 5,
}
RULE_CONFIDENCE_CUE = 0.6
RULE_CONFIDENCE_PRIOR = 0.3


@dataclass
class BloomResult:
    level: int
    confidence: float
    source: str  # llm | rule
    rule_level: int
    rule_cue: str = ""
    llm_level: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "name": BLOOM_LEVELS[self.level],
            "confidence": round(self.confidence, 3),
            "source": self.source,
            "rule_level": self.rule_level,
            "rule_cue": self.rule_cue,
            "llm_level": self.llm_level,
            "notes": self.notes,
        }


def rule_level(question: str, task_type: str = "") -> tuple[int, str, float]:
    """(level, the cue that decided it, confidence) from cue verbs, else the task type."""
    text = " ".join(question.lower().split())
    for level in sorted(_COMPILED, reverse=True):
        for pattern in _COMPILED[level]:
            match = pattern.search(text)
            if match:
                return level, match.group(0), RULE_CONFIDENCE_CUE
    prior = TASK_PRIOR.get(task_type, 2)
    return (
        prior,
        f"task:{task_type}" if task_type in TASK_PRIOR else "default",
        RULE_CONFIDENCE_PRIOR,
    )


def bloom_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "level": {"type": "integer", "enum": [1, 2, 3, 4, 5, 6]},
            "confidence": {"type": "number"},
        },
        "required": ["level", "confidence"],
    }


def parse_llm(data: Any) -> tuple[int, float] | None:
    """(level, confidence) from the classifier's JSON, None when it is not usable."""
    if not isinstance(data, dict):
        return None
    level = data.get("level")
    if isinstance(level, str) and level.strip().isdigit():
        level = int(level.strip())
    if isinstance(level, bool) or not isinstance(level, int) or level not in BLOOM_LEVELS:
        return None
    confidence = data.get("confidence", 0.5)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        confidence = 0.5
    confidence = float(confidence)
    if confidence > 1 and confidence <= 100:  # a percentage
        confidence /= 100
    return level, min(1.0, max(0.0, confidence))


def combine(
    question: str,
    task_type: str,
    llm_result: tuple[int, float] | None,
    *,
    disagreement: int = 1,
    penalty: float = 0.5,
    llm_note: str = "",
) -> BloomResult:
    """The final level: the LLM's, cross-checked by the rule; the rule's when the LLM failed."""
    r_level, cue, r_conf = rule_level(question, task_type)
    if llm_result is None:
        notes = ["LLM classification unavailable; verb rule used"]
        if llm_note:
            notes.append(llm_note)
        return BloomResult(r_level, r_conf, "rule", r_level, cue, None, notes)
    level, confidence = llm_result
    result = BloomResult(level, confidence, "llm", r_level, cue, level)
    if abs(level - r_level) > disagreement:
        result.confidence = confidence * penalty
        result.notes.append(
            f"LLM level {level} ({BLOOM_LEVELS[level]}) and verb rule level {r_level} "
            f"({BLOOM_LEVELS[r_level]}, cue {cue!r}) differ by {abs(level - r_level)}; "
            f"confidence lowered"
        )
    return result
