from __future__ import annotations

import pytest

from harness.adaptation import Adaptation
from harness.errors import UsageError


@pytest.mark.parametrize(("text", "expected"), [
    ("frozen", Adaptation("frozen")), ("full", Adaptation("full")), ("partial:2", Adaptation("partial", 2)),
])
def test_parse(text: str, expected: Adaptation) -> None:
    assert Adaptation.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", "lora", "partial", "partial:0", "partial:-1", "partial:x"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid adaptation mode"):
        Adaptation.parse(text)


def test_partial_more_layers_than_backbone() -> None:
    with pytest.raises(UsageError, match="more layers than backbone 'minilm' has"):
        Adaptation("partial", 7).check_layers(6, "minilm")
