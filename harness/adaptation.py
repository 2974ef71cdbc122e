"""Adaptation modes: a run setting, not a task property. Parsed here (torch-free), applied in training."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import UsageError

_PARTIAL = re.compile(r"^partial:(\d+)$")


@dataclass(frozen=True)
class Adaptation:
    mode: str  # "frozen" | "full" | "partial"
    layers: int | None = None  # partial: how many top layers train

    @classmethod
    def parse(cls, text: str) -> Adaptation:
        text = text.strip()
        if text in ("frozen", "full"):
            return cls(text)
        match = _PARTIAL.match(text)
        if match and int(match.group(1)) >= 1:
            return cls("partial", int(match.group(1)))
        raise UsageError(f"invalid adaptation mode '{text}': use frozen, full or partial:N (N >= 1)")

    def check_layers(self, num_layers: int | None, backbone: str) -> None:
        if self.mode == "partial" and num_layers is not None and self.layers > num_layers:
            raise UsageError(
                f"partial:{self.layers} asks for more layers than backbone '{backbone}' has ({num_layers})")

    def __str__(self) -> str:
        return f"partial:{self.layers}" if self.mode == "partial" else self.mode
