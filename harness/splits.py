"""Deterministic, content-based dataset splits.

A record goes to a split by the sha256 of its content key (plus a per-dataset salt), so the split is
the same on every machine and library version, and duplicates of one text always land together
(no train/test leakage through repeats). Within a split, records are ordered by the same hash, so
"the first N" of a split is a fixed pseudo-random subset, identical for every seed and backbone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

R = TypeVar("R")


def content_hash(key: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\x00{key}".encode()).digest()[:8], "big")


def hash_split(records: Iterable[R], key: Callable[[R], str], salt: str,
               fractions: Sequence[tuple[str, float]]) -> dict[str, list[R]]:
    """Partition records by hashed key into named splits with the given fractions (summing to 1)."""
    if abs(sum(f for _, f in fractions) - 1.0) > 1e-9:
        raise ValueError("split fractions must sum to 1")
    bounds, acc = [], 0.0
    for name, fraction in fractions:
        acc += fraction
        bounds.append((name, acc))
    keyed: dict[str, list[tuple[int, R]]] = {name: [] for name, _ in fractions}
    for record in records:
        h = content_hash(key(record), salt)
        u = h / 2**64
        name = next((n for n, b in bounds if u < b), bounds[-1][0])
        keyed[name].append((h, record))
    return {name: [r for _, r in sorted(items, key=lambda x: x[0])] for name, items in keyed.items()}
