"""What a contender gets (RunContext) and gives back (Measurement). Light: no torch, no harness."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunContext:
    """One contender run (or a benchmark's setup), as the fresh worker process sees it."""

    benchmark: str
    contender: str
    seed: int
    tiny: bool
    workdir: Path  # empty when the run starts; deleted with the benchmark's temporary folder
    options: dict[str, Any] = field(default_factory=dict)  # the contender's own settings
    setup: dict[str, Any] = field(default_factory=dict)  # what the benchmark's setup returned

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"workdir": str(self.workdir)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunContext:
        return cls(**(data | {"workdir": Path(data["workdir"])}))


@dataclass
class Measurement:
    """seconds: the timed quantity the benchmark compares (its `timed` says which); scores: quality numbers
    (the harness's own metric names); extra: anything worth keeping in the JSON result."""

    seconds: float
    scores: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
