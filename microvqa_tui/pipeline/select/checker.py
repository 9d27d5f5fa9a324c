"""The selection step's checks of one MCQ: reasoning (CoT) checks and regeneration, the
image-free test with shortcut rewrites, the Bloom level and the difficulty pass rate."""

from __future__ import annotations

from typing import Any

from microvqa_tui.config.select import SelectSettings
from microvqa_tui.models.client import LLMClient, LLMRequest
from microvqa_tui.pipeline.select.answering import pass_rate
from microvqa_tui.pipeline.select.bloom import bloom_schema, combine, parse_llm
from microvqa_tui.pipeline.select.reasoning import check_cot
from microvqa_tui.pipeline.select.shortcut import ShortcutRemover
from microvqa_tui.pipeline.stage3 import prompts
from microvqa_tui.pipeline.stage3.cot import (
    answer_line,
    final_answer_text,
    match_option,
    with_final_answer,
)
from microvqa_tui.pipeline.stage3.generate import item_seed
from microvqa_tui.pipeline.stage3.validate import assemble_cot, echoed_field
from microvqa_tui.vocabulary import (
    STATUS_FLAGGED,
    STATUS_HELD_OUT,
    STATUS_KEPT,
)

SURVIVOR, HELD, FLAGGED = "survivor", "held_out", "flagged"


class Checker:
    def __init__(self, llm: LLMClient, cfg: SelectSettings, templates: dict, version: str):
        self.llm, self.cfg, self.t, self.version = llm, cfg, templates, version
        self.cot_instructions = "\n".join(templates["cot"].sections.values())
        self.remover = ShortcutRemover(
            llm, cfg, templates["answer"], templates["rewrite"], templates["check"]
        )

    def check(self, row: dict, caption: str) -> dict:
        """Check one MCQ row in place; returns the per-item result stored in params."""
        cfg = self.cfg
        result: dict[str, Any] = {"version": self.version, "outcome": SURVIVOR}
        if cfg.reasoning_checks:
            reasoning = self.reasoning(row, caption)
            result["reasoning"] = reasoning
            if not reasoning["passed"]:
                result["outcome"] = HELD
                row["status"] = STATUS_HELD_OUT
                row["reason"] = reasoning["reason"]
                if cfg.bloom:  # the verb rule, free: a reviewer may still rescue the item
                    bloom = self.bloom(row, use_llm=False)
                    row["bloom_level"] = bloom.level
                    row["bloom_confidence"] = round(bloom.confidence, 3)
                    result["bloom"] = bloom.as_dict()
                return result
        if cfg.shortcut_removal:
            shortcut = self.remover.run(row)
            info = shortcut.as_dict()
            if shortcut.rewritten:
                info["original"] = {"question": row["question"], "choices": row["choices"]}
                row["question"], row["choices"] = shortcut.question, shortcut.choices
                row["cot"] = with_final_answer(row["cot"], row["correct_index"], row["choices"])
            row["image_free_pass_rate"] = round(shortcut.rate, 4)
            result["shortcut"] = info
            if shortcut.answerable:
                result["outcome"] = FLAGGED
                row["status"] = STATUS_FLAGGED
                rewrites = len(shortcut.rounds)
                row["reason"] = (
                    f"image_free_answerable: a text-only model chose the answer in "
                    f"{shortcut.rate:.0%} of {cfg.image_free_attempts} tries without the image "
                    f"(threshold {cfg.image_free_threshold:.0%}) after {rewrites} rewrite(s)"
                )
        if cfg.bloom:
            bloom = self.bloom(row)
            row["bloom_level"], row["bloom_confidence"] = bloom.level, round(bloom.confidence, 3)
            result["bloom"] = bloom.as_dict()
        if cfg.difficulty:
            rate = self.difficulty(row, caption)
            row["pass_rate"] = round(rate.rate, 4)
            result["difficulty"] = rate.as_dict()
        if result["outcome"] == SURVIVOR:
            row["status"], row["reason"] = STATUS_KEPT, ""
        return result

    def reasoning(self, row: dict, caption: str) -> dict[str, Any]:
        cfg = self.cfg
        failures = check_cot(row["cot"], row["choices"], row["correct_index"], cfg)
        info: dict[str, Any] = {"failures": [f.text() for f in failures], "regenerated": False}
        if failures and cfg.regenerate_cot:
            info["regenerated"] = True
            new_cot = self.regenerate_cot(row, caption, failures[0].text())
            if new_cot is None:
                info["regeneration"] = (
                    "the model gave no usable CoT (unparsable or a copy of the prompt)"
                )
            else:
                again = check_cot(new_cot, row["choices"], row["correct_index"], cfg)
                info["regeneration_failures"] = [f.text() for f in again]
                if not again:
                    info["original_cot"] = row["cot"]
                    row["cot"] = new_cot
                failures = again
        info["passed"] = not failures
        if failures:
            info["reason"] = info["failures"][0]
            if info["regenerated"]:
                again = info.get("regeneration_failures") or [info.get("regeneration", "")]
                info["reason"] += f"; the regenerated CoT failed too ({again[0]})"
        return info

    def regenerate_cot(self, row: dict, caption: str, problem: str) -> str | None:
        choices, correct = row["choices"], row["correct_index"]
        reply = self.llm.ask(
            LLMRequest.of(
                self.t["cot"].messages(
                    {
                        "caption": caption[:1200],
                        "question": row["question"],
                        "options": prompts.options_block(choices),
                        "answer": answer_line(correct, choices).removeprefix("Answer: "),
                        "problem": problem,
                    }
                ),
                prompts.cot_schema(choices),
                purpose="cot",
                temperature=0.5,
                seed=item_seed(self.cfg.seed, f"cot:{row['mcq_id']}", 1),
                max_tokens=self.cfg.cot_max_tokens,
                retries=0,
            )
        )
        if not reply.ok or not isinstance(reply.value, dict):
            return None
        if echoed_field(reply.value, self.cot_instructions):
            return None  # the model copied the prompt's instructions
        cot = assemble_cot(reply.value)
        if not cot:
            return None
        named = final_answer_text(cot)
        if named and match_option(named, choices) == correct:
            cot = with_final_answer(cot, correct, choices)
        return cot

    def bloom(self, row: dict, *, use_llm: bool = True):
        cfg = self.cfg
        task = row.get("task_str", "")
        llm_result, note = None, ""
        if cfg.bloom_use_llm and use_llm:
            reply = self.llm.ask(
                LLMRequest.of(
                    self.t["bloom"].messages({"question": row["question"], "task_type": task}),
                    bloom_schema(),
                    purpose="bloom",
                    temperature=0.0,
                    seed=item_seed(cfg.seed, f"bloom:{row['mcq_id']}", 0),
                    max_tokens=24,
                    retries=0,
                )
            )
            llm_result = parse_llm(reply.value) if reply.ok else None
            if llm_result is None:
                note = f"classifier reply unusable: {reply.message or reply.raw[:120]}"
        return combine(
            row["question"],
            task,
            llm_result,
            disagreement=cfg.bloom_disagreement,
            penalty=cfg.bloom_confidence_penalty,
            llm_note=note,
        )

    def difficulty(self, row: dict, caption: str):
        cfg = self.cfg
        context = ""
        if cfg.difficulty_context == "caption" and caption:
            context = f"Figure caption: {caption[:1200]}\n"
        return pass_rate(
            self.llm,
            self.t["difficulty"],
            question=row["question"],
            choices=row["choices"],
            correct_index=row["correct_index"],
            attempts=cfg.difficulty_attempts,
            temperature=cfg.difficulty_temperature,
            seed=cfg.seed,
            key=row["mcq_id"],
            purpose="difficulty",
            shuffle=cfg.shuffle_options,
            extra={"context": context},
            max_tokens=cfg.answer_max_tokens,
        )
