"""The local executor (the default): the cells run here, one after another, straight into the runs
directory. Each cell is held under its run's lock from the last completeness check to result.json, so two
runners sharing a runs directory never run a cell twice: the second finds it complete (reused) or held
(running elsewhere)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from harness.errors import AlreadyComplete, HarnessError, RunInProgress
from harness.execution import RunOutcome, execute, explain_outcomes
from harness.executors.base import LOCAL, CellJob, CellResult, Report, Status
from harness.leaderboard import Leaderboard
from harness.progress import ProgressReporter
from harness.store import RunStore

log = logging.getLogger("harness")


class LocalExecutor:
    name = "local"

    def __init__(self, device: str):
        self.device = device  # resolved: cpu or cuda

    def run(self, board: Leaderboard, jobs: Sequence[CellJob], store: RunStore, explain: bool,
            progress: ProgressReporter, report: Report) -> None:
        for job in jobs:
            report(run_cell_here(job, store, self.device, explain, progress))


def run_cell_here(job: CellJob, store: RunStore, device: str, explain: bool, progress: ProgressReporter,
                  where: str = LOCAL) -> CellResult:
    """Run one cell in this process (here, or inside a Ray worker on its scratch store), explaining it after
    training when asked; never raises for a failing cell."""
    plan = job.plan
    assert plan is not None
    started = time.perf_counter()

    def result(status: Status, record: dict[str, Any] | None = None, error: str = "") -> CellResult:
        return CellResult(job, status, record, error, round(time.perf_counter() - started, 3), where)

    try:
        with store.hold(plan.run_id):
            stored = store.find_complete(plan.run_id, plan.config_hash)
            if stored is not None:  # another runner finished it since the board was planned
                return result("reused", record=stored)
            outcome = RunOutcome(execute(plan, store, device, progress), reused=False)
            if explain:
                explain_outcomes([outcome], store, device, None, progress)
    except AlreadyComplete as done:  # finished elsewhere between the check and the claim
        return result("reused", record=done.record)
    except RunInProgress as exc:
        return result("elsewhere", error=str(exc))
    except HarnessError as exc:
        return result("failed", error=str(exc))
    except Exception as exc:  # one cell's unexpected failure never stops the board
        log.debug("%s failed", job.label, exc_info=True)
        return result("failed", error=f"{type(exc).__name__}: {exc}")
    return result("ran", record=outcome.record)
