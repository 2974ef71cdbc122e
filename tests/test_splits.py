from __future__ import annotations

from harness.splits import hash_split

FRACTIONS = (("train", 0.7), ("dev", 0.15), ("test", 0.15))


def test_split_is_deterministic_and_order_independent() -> None:
    records = [f"sentence {i}" for i in range(2000)]
    a = hash_split(records, key=str, salt="s", fractions=FRACTIONS)
    b = hash_split(list(reversed(records)), key=str, salt="s", fractions=FRACTIONS)
    assert a == b
    assert sum(len(v) for v in a.values()) == 2000
    assert 0.65 < len(a["train"]) / 2000 < 0.75


def test_duplicates_land_in_the_same_split() -> None:
    records = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5)]
    parts = hash_split(records, key=lambda r: r[0], salt="s", fractions=FRACTIONS)
    holding = [name for name, rows in parts.items() if any(r[0] == "a" for r in rows)]
    assert len(holding) == 1


def test_salt_changes_the_split() -> None:
    records = [str(i) for i in range(200)]
    assert hash_split(records, key=str, salt="x", fractions=FRACTIONS) != hash_split(
        records, key=str, salt="y", fractions=FRACTIONS)
