"""Balanced, deterministic placement of the correct option.

Models put the right answer first (or last) far more often than chance, and a dataset whose
answers sit mostly at one letter has a shortcut. So the position is not left to the model,
nor to a coin: each accepted MCQ takes a position that is least used so far among MCQs with
the same number of options, ties broken by a seeded permutation of the positions that
changes every round. Over the dataset the counts differ by at most one, and a resumed run
continues the balance from the positions already in the store.
"""

from __future__ import annotations

import random
from collections.abc import Iterable


class PositionBalancer:
    def __init__(self, n_choices: int, seed: int = 0, existing: Iterable[int] = ()) -> None:
        if n_choices < 2:
            raise ValueError("an MCQ needs at least two options")
        self.n = n_choices
        self.seed = seed
        self.counts = [0] * n_choices
        for index in existing:
            if 0 <= index < n_choices:
                self.counts[index] += 1

    def _order(self, level: int) -> list[int]:
        order = list(range(self.n))
        random.Random(f"positions:{self.seed}:{self.n}:{level}").shuffle(order)
        return order

    def peek(self) -> int:
        level = min(self.counts)
        return next(p for p in self._order(level) if self.counts[p] == level)

    def take(self) -> int:
        """The position for the next accepted MCQ (and count it)."""
        position = self.peek()
        self.counts[position] += 1
        return position


def place(correct: str, distractors: list[str], position: int) -> list[str]:
    """Options with `correct` at `position` and the distractors, in order, around it."""
    choices = list(distractors)
    choices.insert(position, correct)
    return choices
