"""Union-find (disjoint sets) over integer ids 0..n-1: path halving and union by size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.parent)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, a: int, b: int) -> int:
        """Join the sets of `a` and `b`; returns the new root."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra

    def union_pairs(self, pairs: Iterable[tuple[int, int]]) -> None:
        for a, b in pairs:
            self.union(int(a), int(b))

    def connected(self, a: int, b: int) -> bool:
        return self.find(a) == self.find(b)

    def roots(self) -> np.ndarray:
        """The root of every element (fully compressed)."""
        return np.fromiter(
            (self.find(i) for i in range(len(self.parent))), np.int64, len(self.parent)
        )

    def components(self, min_size: int = 1) -> list[list[int]]:
        """Members of each set with at least `min_size` members, each sorted, ordered by their
        smallest member (deterministic)."""
        members: dict[int, list[int]] = defaultdict(list)
        for index in range(len(self.parent)):
            members[self.find(index)].append(index)
        groups = [sorted(group) for group in members.values() if len(group) >= min_size]
        groups.sort(key=lambda group: group[0])
        return groups
