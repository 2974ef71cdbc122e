"""Running planned runs and recording them: one task's runs and a leaderboard's cells go through the
same path. A run is claimed in the store, trained (`harness.training.train`), and committed with its
predictions and weights before `result.json`, which is written last and marks the run complete."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import tuning
from harness.environment import describe_environment
from harness.errors import AlreadyComplete, HarnessError, NothingToExplain, RunFailed, RunInProgress
from harness.executors.base import LOCAL, CellJob, CellResult, Executor
from harness.leaderboard import Cell, Leaderboard, ModelSelection
from harness.planning import RunPlan, plan_cell
from harness.progress import ProgressReporter
from harness.store import LOG, SCHEMA_VERSION, RunStore
from harness.task import TASKS
from harness.tracking import run_tags, tracking
from harness.training.distributed import is_main_process, world_size
from harness.training.train import resolve_device, train

log = logging.getLogger("harness")


@dataclass
class RunOutcome:
    record: dict[str, Any]
    reused: bool  # True when an identical complete run was found and not rerun


@dataclass
class BoardSummary:
    """What running a leaderboard did, one `CellResult` per cell: run ids ran now, reused (already complete),
    running elsewhere (another process held the cell), and the cells that failed. A tuned board's trials are
    summarised apart, in `trials`."""

    results: list[CellResult] = field(default_factory=list)  # in the order the cells finished
    trials: BoardSummary | None = None

    def _ids(self, status: str) -> list[str]:
        return [r.job.plan.run_id for r in self.results if r.status == status and r.job.plan is not None]

    @property
    def ran(self) -> list[str]:
        return self._ids("ran")

    @property
    def reused(self) -> list[str]:
        return self._ids("reused")

    @property
    def elsewhere(self) -> list[str]:
        return self._ids("elsewhere")

    @property
    def failed(self) -> list[tuple[str, str, int, str]]:  # (task, model label, seed, error)
        return [(r.job.cell.task, r.job.cell.model.label, r.job.cell.seed, r.error)
                for r in self.results if r.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reused": self.reused, "ran": self.ran, "running_elsewhere": self.elsewhere,
                               "failed": [list(f) for f in self.failed]}
        return out | ({"trials": self.trials.to_dict()} if self.trials is not None else {})


def run_plans(plans: Sequence[RunPlan], store: RunStore, device: str, progress: ProgressReporter,
              force: bool = False, wait: bool = True) -> list[RunOutcome]:
    """Each plan's stored complete run when one exists (unless force), else a fresh run. A run that another
    process is running right now is waited for and then reused (or run here if it did not complete);
    without `wait` it is RunInProgress."""
    outcomes = []
    for plan in plans:
        stored = None if force else store.find_complete(plan.run_id, plan.config_hash)
        if stored is None and not is_main_process():  # another rank of a DDP run: rank 0 holds and records it
            outcomes.append(RunOutcome(execute(plan, store, device, progress, force), reused=False))
            continue
        if stored is None:
            with store.hold(plan.run_id, wait=wait):  # re-checked under the lock: the holder may have finished
                try:
                    outcomes.append(RunOutcome(execute(plan, store, device, progress, force), reused=False))
                    continue
                except AlreadyComplete as done:
                    stored = done.record
        log.info("run %s is already complete: using the stored result (--force reruns it)", plan.run_id)
        outcomes.append(RunOutcome(stored, reused=True))
    return outcomes


def explain_outcomes(outcomes: Sequence[RunOutcome], store: RunStore, device: str, data_dir: str | None,
                     progress: ProgressReporter) -> None:
    """Explain each complete run (a stored explanation with the same settings is kept) into its record."""
    from harness.explain import runner  # captum, the explainers and the RL rebuild: only when explaining

    for outcome in outcomes:
        try:
            block = runner.explain_run(store, outcome.record["run_id"], device, data_dir, progress=progress)
        except NothingToExplain as exc:  # the run itself stands; only its explanation is empty
            log.warning("run %s: %s", outcome.record["run_id"], exc)
            continue
        outcome.record = outcome.record | {"explanation": block}


def run_leaderboard(board: Leaderboard, store: RunStore, executor: Executor, progress: ProgressReporter,
                    explain: bool = False) -> BoardSummary:
    """Every missing cell of a leaderboard, run by `executor` (`harness.executors`: here one after another,
    or as Ray tasks). The cells are planned here, so run ids and config hashes never depend on where a cell
    runs; complete ones are skipped by config hash before anything is handed out; a cell another process is
    running is reported as running elsewhere; one failing cell never stops the others. With explain, cells
    found complete are explained here (a stored explanation with the same settings is kept). A tuned board
    first runs its trials the same way (`harness.tuning`), then the tested runs of each model's choice."""
    summary = BoardSummary()
    cells, failed = _tuned_cells(board, store, executor, progress, summary) if board.tune else (board.cells(), [])
    _run_cells(board, cells, store, executor, progress, explain, summary, f"leaderboard {board.name}", failed)
    for result in summary.results:  # finished by another runner while this one went on: count it as reused
        plan = result.job.plan
        if result.status == "elsewhere" and plan is not None:
            stored = store.find_complete(plan.run_id, plan.config_hash)
            if stored is not None:
                result.status, result.record = "reused", stored
                log.info("%s: finished elsewhere meanwhile, counted as already complete", result.job.label)
    return summary


def _run_cells(board: Leaderboard, cells: Sequence[Cell], store: RunStore, executor: Executor,
               progress: ProgressReporter, explain: bool, summary: BoardSummary, phase: str,
               failed: Sequence[tuple[Cell, str]] = ()) -> None:
    """Plan `cells`, reuse the complete ones, hand the rest to `executor`; every outcome goes into `summary`.
    `failed`: cells that cannot be planned at all (e.g. every trial of their tuning failed), with the reason."""
    jobs = []
    total = len(cells) + len(failed)
    with progress.phase(phase, total) as update:
        tally = _Tally(total, summary, update)
        for cell, reason in failed:
            tally.finish(CellResult(CellJob(0, cell, None), "failed", error=reason))
        for index, cell in enumerate(cells, len(failed) + 1):
            try:
                job = CellJob(index, cell, plan_cell(board, cell))
            except HarnessError as exc:
                tally.finish(CellResult(CellJob(index, cell, None), "failed", error=str(exc)))
                continue
            assert job.plan is not None
            stored = store.find_complete(job.plan.run_id, job.plan.config_hash)
            if stored is None:
                jobs.append(job)
            else:
                tally.finish(_explained(CellResult(job, "reused", stored), store, executor, explain, progress))
        log.info("%s: %d cells, %d to run (%s executor)", phase, total, len(jobs), executor.name)
        executor.run(board, jobs, store, explain, progress,
                     lambda result: tally.finish(_explained(result, store, executor, explain, progress)))


def _tuned_cells(board: Leaderboard, store: RunStore, executor: Executor, progress: ProgressReporter,
                 summary: BoardSummary) -> tuple[list[Cell], list[tuple[Cell, str]]]:
    """Run a tuned board's trials (into `summary.trials`), choose each (task, model)'s settings on dev, and
    return the tested cells of the choices, plus the cells that cannot run (no space to tune, no trial done)."""
    summary.trials = BoardSummary()
    trials: dict[tuple[str, ModelSelection], list[Cell]] = {}
    failed: list[tuple[Cell, str]] = []
    for task, model in board.pairs():
        try:
            trials[(task, model)] = tuning.trial_cells(board, task, model)
        except HarnessError as exc:
            failed += [(Cell(task, model, seed), str(exc)) for seed in board.seeds]
    everything = [cell for cells in trials.values() for cell in cells]
    _run_cells(board, everything, store, executor, progress, False, summary.trials, f"tuning {board.name}")
    done = {r.job.cell: r.record for r in summary.trials.results if r.record is not None and r.status != "failed"}
    tested = []
    for (task, model), cells in trials.items():
        spec = TASKS.get(task).spec
        scored = [{"changes": c.changes, "seed": c.seed, "dev": done[c]["primary"], "run_id": done[c]["run_id"]}
                  for c in cells if c in done]
        try:
            block = tuning.choose(tuning.search_space(board, task, model), scored, spec.primary.name,
                                  spec.primary.higher_is_better, board.trial_seeds)
        except HarnessError as exc:
            failed += [(Cell(task, model, seed), f"tuning: {exc}") for seed in board.seeds]
            continue
        block["trial_runs"] = [{"point": dict(t["changes"]), "seed": t["seed"], "dev": t["dev"], "run_id": t["run_id"]}
                               for t in scored]
        log.info("%s / %s: chose %s (%s)", task, model.label, block["chosen"], block["selected_by"])
        tested += tuning.tested_cells(board, task, model, block)
    return tested, failed


def _explained(result: CellResult, store: RunStore, executor: Executor, explain: bool,
               progress: ProgressReporter) -> CellResult:
    """A reused cell, explained here when asked (cells that ran were explained where they ran)."""
    if not explain or result.status != "reused" or result.record is None:
        return result
    outcome = RunOutcome(result.record, reused=True)
    try:
        explain_outcomes([outcome], store, resolve_device(executor.device), None, progress)
    except RunInProgress:  # another runner on this runs directory is explaining it right now: not a failure
        return CellResult(result.job, "elsewhere", result.record, "being explained by another process")
    except HarnessError as exc:
        return CellResult(result.job, "failed", result.record, f"explaining it failed: {exc}")
    result.record = outcome.record
    return result


class _Tally:
    """Counts finished cells into the summary: one log line each (with an estimate of the time left, from
    the cells that ran so far) and one step of the board's progress bar."""

    def __init__(self, total: int, summary: BoardSummary, update: Any):
        self.total, self.summary, self.update = total, summary, update
        self.started = time.perf_counter()

    def finish(self, result: CellResult) -> None:
        self.summary.results.append(result)
        done = len(self.summary.results)
        worked = sum(r.status in ("ran", "failed") for r in self.summary.results)
        left = self.total - done
        eta = (time.perf_counter() - self.started) / worked * left if worked and left else None
        line = f"[{done}/{self.total}] {result.job.label}: {_outcome_text(result)}"
        line += f" (about {_duration(eta)} left)" if eta is not None else ""
        log.log(logging.WARNING if result.status == "failed" else logging.INFO, "%s", line)
        counts = {s: sum(r.status == s for r in self.summary.results) for s in ("ran", "reused", "elsewhere")}
        self.update(1, **counts, failed=len(self.summary.failed))


def _outcome_text(result: CellResult) -> str:
    record = result.record or {}
    score = f"{record.get('primary_metric')} {record['primary']:.4g}" if record.get("primary") is not None else ""
    if result.status == "ran":
        return f"ran, {score} in {result.seconds:.1f}s on {result.where}"
    if result.status == "reused":
        return f"already complete, {score}"
    if result.status == "elsewhere":
        return "running elsewhere (another process holds it)"
    return f"FAILED{'' if result.where == LOCAL else f' on {result.where}'}: {result.error}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def execute(plan: RunPlan, store: RunStore, device: str, progress: ProgressReporter,
            force: bool = False) -> dict[str, Any]:
    """Run one plan under a claim on its run directory; a failure is recorded, then raised. A run found
    complete once claimed (finished by another process meanwhile) is AlreadyComplete, unless force."""
    spec = plan.task.spec
    started = time.perf_counter()
    if not is_main_process():  # another rank of a run over several devices: it trains, rank 0 records
        train(plan, device, progress)
        return base_record(plan, device)
    unless_complete = None if force else plan.config_hash
    with store.claim(plan.run_id, unless_complete) as directory, _log_to(directory / LOG):
        log.info("run %s: task %s v%s, backbone %s (%s), adapt %s, protocol %s, seed %d, device %s",
                 plan.run_id, spec.name, spec.version, plan.backbone.name, plan.asset.source, plan.adaptation,
                 plan.protocol.name, plan.seed, device)
        record = base_record(plan, device)
        try:
            with tracking(plan.run_id, plan.config | {"config_hash": plan.config_hash}, run_tags(plan)) as trackers:
                result = train(plan, device, progress)
                if trackers is not None:
                    trackers.log({f"{plan.final_split}/{k}": v for k, v in result.test.metrics.items()}
                                 | {f"timing/{k}": v for k, v in result.timing.items() if v is not None})
        except HarnessError as exc:
            store.write_result(record | {"status": "failed", "error": str(exc)})
            raise
        except Exception as exc:  # an unexpected failure is still recorded, then reported
            store.write_result(record | {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise RunFailed(f"run {plan.run_id} failed: {type(exc).__name__}: {exc}") from exc
        store.write_predictions(plan.run_id, (
            {"id": i, "pred": p, "ref": r}
            for i, p, r in zip(result.test.ids, result.test.preds, result.test.refs, strict=True)))
        store.write_weights(plan.run_id, result.trainable_state,
                            {"run_id": plan.run_id, "config_hash": plan.config_hash})
        record |= {
            "status": "complete",
            "metrics": result.test.metrics,
            "primary": result.test.metrics[spec.primary.name],
            "n_examples": len(result.test.ids),
            "n_train": result.n_train,
            "n_dev": result.n_dev,
            "best_epoch": result.best_epoch,
            "dev_history": result.dev_history,
            "timing": result.timing | {"total_s": round(time.perf_counter() - started, 3)},
            "execution": result.execution,
        }
        store.write_result(record)  # last: its presence marks the run complete
        log.info("run %s complete: %s %.4f", plan.run_id, spec.primary.name, record["primary"])
        return record


def base_record(plan: RunPlan, device: str) -> dict[str, Any]:
    """The run record before training: identity, configuration and environment (schema in DESIGN.md 4)."""
    spec = plan.task.spec
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": plan.run_id,
        "status": "running",
        "task": spec.name,
        "task_version": spec.version,
        "modality": spec.modality,
        "backbone": plan.backbone.name,
        # what rebuilds the backbone later (harness explain): a local folder's path, else the name
        "backbone_ref": plan.backbone.local_dir or plan.backbone.name,
        "backbone_source": plan.asset.source,
        "adapt": str(plan.adaptation),
        "protocol": plan.protocol.name,
        "seed": plan.seed,
        "config": plan.config,
        "config_hash": plan.config_hash,
        "primary_metric": spec.primary.name,
        "higher_is_better": spec.primary.higher_is_better,
        "metrics": {},
        "primary": None,
        "n_examples": 0,
        "timing": {},
        "env": describe_environment(device) | {"world_size": world_size()},  # not in the config: same run id
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    } | ({"role": "trial", "evaluated_on": "dev"} if plan.trial else {}) | plan.record_notes


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Copy the harness log into the run's run.log for the duration of the run."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)  # the file gets INFO; other handlers keep their own levels
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
