"""Accuracy per MCQ family (the `family` column of every MCQ), for evaluation reports.

Spatial families are also rolled up into groups: "spatial" (every spatial:* item) and
"spatial/micrograph", "spatial/molecular", "spatial/interaction".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from microvqa_tui.pipeline.spatial.common import (
    FAMILY_PREFIX,
    INTERACTION_FAMILIES,
    MICRO_FAMILIES,
    MOL_VIEW_FAMILIES,
)

GROUPS = {
    **{f: "micrograph" for f in MICRO_FAMILIES},
    **{f: "molecular" for f in MOL_VIEW_FAMILIES},
    **{f: "interaction" for f in INTERACTION_FAMILIES},
}


@dataclass
class FamilyScore:
    n: int = 0
    correct: int = 0
    unanswered: int = 0
    chance: float = 0.0  # expected accuracy of random guessing (mean 1/len(choices))

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["accuracy"] = None if self.accuracy is None else round(self.accuracy, 4)
        out["chance"] = round(self.chance / self.n, 4) if self.n else None
        return out


def family_groups(family: str) -> list[str]:
    """The roll-up groups a family counts toward (besides itself)."""
    if not family.startswith(FAMILY_PREFIX):
        return []
    group = GROUPS.get(family.removeprefix(FAMILY_PREFIX))
    return ["spatial"] + ([f"spatial/{group}"] if group else [])


def _predicted_index(prediction: Any, choices: list[str]) -> int | None:
    if prediction is None or isinstance(prediction, bool):
        return None
    if isinstance(prediction, int):
        return prediction
    if isinstance(prediction, str):
        text = prediction.strip()
        if text in choices:
            return choices.index(text)
        if text.isdigit():
            return int(text)
    return None


def accuracy_by_family(
    items: Iterable[Mapping[str, Any]],
    predictions: Mapping[str, Any],
    *,
    id_key: str = "mcq_id",
    rollups: bool = True,
) -> dict[str, dict[str, Any]]:
    """Accuracy per family of the items that have an entry in `predictions`.

    `items` are MCQ rows (id, `family`, `correct_index`, `choices`); a prediction is a 0-based
    index, the text of a choice, or None (no parseable answer: counted wrong and
    `unanswered`). Items without a prediction are left out. Returns
    {family: {n, correct, accuracy, unanswered, chance}}, families sorted, then the
    spatial roll-ups when `rollups`.
    """
    scores: dict[str, FamilyScore] = {}
    for item in items:
        item_id = item[id_key]
        if item_id not in predictions:
            continue
        family = item.get("family") or "unknown"
        choices = list(item.get("choices") or [])
        predicted = _predicted_index(predictions[item_id], choices)
        names = [family] + (family_groups(family) if rollups else [])
        for name in names:
            score = scores.setdefault(name, FamilyScore())
            score.n += 1
            score.correct += int(predicted == int(item["correct_index"]))
            score.unanswered += int(predicted is None)
            score.chance += 1.0 / len(choices) if choices else 0.0
    plain = sorted(k for k in scores if k != "spatial" and not k.startswith("spatial/"))
    groups = sorted(k for k in scores if k == "spatial" or k.startswith("spatial/"))
    return {k: scores[k].to_dict() for k in plain + groups}


def accuracy_by_family_from_store(store, predictions: Mapping[str, Any]) -> dict[str, dict]:
    """`accuracy_by_family` over the store's MCQs named in `predictions`."""
    rows = store.get_many(
        "mcqs", list(predictions), columns=["mcq_id", "family", "correct_index", "choices"]
    )
    return accuracy_by_family(rows, predictions)
