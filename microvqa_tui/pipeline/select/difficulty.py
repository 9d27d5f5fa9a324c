"""Difficulty tiers from pass rates, and the selection policies built on them.

Tiers: never (pass rate <= never_max), always (>= always_min), sometimes (between).
Policies: keep_all; drop_always (hold out the always-solved); hardest (keep the hardest
`hardest_fraction`: lowest pass rate first, ties broken by a seeded hash of the id so the
choice is stable and not biased by insertion order).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from microvqa_tui.config.select import SelectSettings

TIERS = ("never", "sometimes", "always")


def tier(rate: float | None, cfg: SelectSettings) -> str:
    if rate is None:
        return ""
    if rate <= cfg.never_max:
        return "never"
    if rate >= cfg.always_min:
        return "always"
    return "sometimes"


@dataclass
class PolicyOutcome:
    policy: str
    kept: list[str] = field(default_factory=list)
    held_out: dict[str, str] = field(default_factory=dict)  # mcq_id -> reason
    fraction: float | None = None

    def counts(self) -> dict:
        data = {
            "policy": self.policy,
            "entered": len(self.kept) + len(self.held_out),
            "kept": len(self.kept),
            "held_out": len(self.held_out),
        }
        if self.fraction is not None:
            data["hardest_fraction"] = self.fraction
        return data


def _tiebreak(mcq_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{mcq_id}".encode()).hexdigest()


def apply_policy(items: dict[str, float | None], cfg: SelectSettings) -> PolicyOutcome:
    """Which of `items` (mcq_id -> pass rate, None = not measured) the policy keeps.

    An item without a pass rate is kept by every policy (nothing says it is easy) and
    ranked as hardest by `hardest`.
    """
    outcome = PolicyOutcome(cfg.policy)
    if cfg.policy == "keep_all":
        outcome.kept = sorted(items)
    elif cfg.policy == "drop_always":
        for mcq_id in sorted(items):
            rate = items[mcq_id]
            if tier(rate, cfg) == "always":
                outcome.held_out[mcq_id] = (
                    f"policy_drop_always: always solved by the small model (pass rate {rate:.2f})"
                )
            else:
                outcome.kept.append(mcq_id)
    else:
        outcome.fraction = cfg.hardest_fraction
        ranked = sorted(
            items,
            key=lambda i: (-1.0 if items[i] is None else items[i], _tiebreak(i, cfg.seed)),
        )
        keep = math.ceil(cfg.hardest_fraction * len(ranked) - 1e-9)
        outcome.kept = sorted(ranked[:keep])
        for mcq_id in ranked[keep:]:
            rate = items[mcq_id]
            outcome.held_out[mcq_id] = (
                f"policy_hardest: not among the hardest {cfg.hardest_fraction:.0%} "
                f"(pass rate {rate:.2f})"
            )
    return outcome
