"""What an executor promises: it runs the leaderboard cells it is handed and reports each one, once, as a
`CellResult`: run now, found complete (reused), running elsewhere (another process holds its lock) or
failed. One failing cell never stops the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.leaderboard import Cell, Leaderboard
from harness.planning import RunPlan
from harness.progress import ProgressReporter
from harness.store import RunStore

Status = Literal["ran", "reused", "elsewhere", "failed"]
LOCAL = "local"  # where a cell ran when it ran in this process


@dataclass
class CellJob:
    """One missing cell: its plan (run id and config hash fixed by the driver) and its place on the board."""

    index: int  # 1-based position among the board's cells
    cell: Cell
    plan: RunPlan | None  # None when planning the cell failed (then it never reaches an executor)

    @property
    def label(self) -> str:
        return f"{self.cell.task} / {self.cell.model.label} / seed {self.cell.seed}"


@dataclass
class CellResult:
    """What became of one cell. `record` is the run's result.json when the cell ran or was reused."""

    job: CellJob
    status: Status
    record: dict[str, Any] | None = None
    error: str = ""
    seconds: float = 0.0  # the cell's own wall time where it ran (training, writing, explaining)
    where: str = LOCAL  # "local", or the Ray node (hostname and IP)
    overhead: dict[str, float] = field(default_factory=dict)  # Ray: scheduling_s, shipped_bytes, shipping_s


Report = Callable[[CellResult], None]


class Executor(Protocol):
    """Runs cells; calls `report` once per job (from the calling thread), in any order."""

    name: str
    device: str  # what cells found complete are explained on, here: auto | cpu | cuda

    def run(self, board: Leaderboard, jobs: Sequence[CellJob], store: RunStore, explain: bool,
            progress: ProgressReporter, report: Report) -> None: ...
