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

from harness.environment import describe_environment
from harness.errors import HarnessError, NothingToExplain, RunFailed
from harness.explain.runner import explain_run
from harness.leaderboard import Cell, Leaderboard, ModelSelection
from harness.planning import RunPlan, plan_cell
from harness.progress import ProgressReporter
from harness.store import LOG, SCHEMA_VERSION, RunStore
from harness.training.train import train

log = logging.getLogger("harness")


@dataclass
class RunOutcome:
    record: dict[str, Any]
    reused: bool  # True when an identical complete run was found and not rerun


@dataclass
class BoardSummary:
    """What running a leaderboard did: run ids ran now or reused, and the cells that failed."""

    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)  # (task, model label, seed, error)

    def to_dict(self) -> dict[str, list[Any]]:
        return {"reused": self.reused, "ran": self.ran, "failed": [list(f) for f in self.failed]}


def run_plans(plans: Sequence[RunPlan], store: RunStore, device: str, progress: ProgressReporter,
              force: bool = False) -> list[RunOutcome]:
    """Each plan's stored complete run when one exists (unless force), else a fresh run."""
    outcomes = []
    for plan in plans:
        stored = None if force else store.find_complete(plan.run_id, plan.config_hash)
        if stored is not None:
            log.info("run %s is already complete: using the stored result (--force reruns it)", plan.run_id)
            outcomes.append(RunOutcome(stored, reused=True))
        else:
            outcomes.append(RunOutcome(execute(plan, store, device, progress), reused=False))
    return outcomes


def explain_outcomes(outcomes: Sequence[RunOutcome], store: RunStore, device: str, data_dir: str | None,
                     progress: ProgressReporter) -> None:
    """Explain each complete run (a stored explanation with the same settings is kept) into its record."""
    for outcome in outcomes:
        try:
            block = explain_run(store, outcome.record["run_id"], device, data_dir, progress=progress)
        except NothingToExplain as exc:  # the run itself stands; only its explanation is empty
            log.warning("run %s: %s", outcome.record["run_id"], exc)
            continue
        outcome.record = outcome.record | {"explanation": block}


def run_leaderboard(board: Leaderboard, store: RunStore, device: str, progress: ProgressReporter,
                    explain: bool = False) -> BoardSummary:
    """Every missing cell (complete ones are skipped by config hash); one failing cell never stops the others."""
    summary = BoardSummary()
    pairs = board.pairs()
    for index, (task, model) in enumerate(pairs, 1):
        log.info("[%d/%d] %s with %s, seeds %s", index, len(pairs), task, model.label,
                 ",".join(map(str, board.seeds)))
        for seed in board.seeds:
            _run_cell(board, task, model, seed, store, device, progress, explain, summary)
    return summary


def _run_cell(board: Leaderboard, task: str, model: ModelSelection, seed: int, store: RunStore, device: str,
              progress: ProgressReporter, explain: bool, summary: BoardSummary) -> None:
    try:
        plan = plan_cell(board, Cell(task, model, seed))
        (outcome,) = run_plans([plan], store, device, progress)
        if explain:
            explain_outcomes([outcome], store, device, None, progress)
    except HarnessError as exc:
        log.warning("%s / %s / seed %d failed: %s", task, model.label, seed, exc)
        summary.failed.append((task, model.label, seed, str(exc)))
        return
    (summary.reused if outcome.reused else summary.ran).append(outcome.record["run_id"])


def execute(plan: RunPlan, store: RunStore, device: str, progress: ProgressReporter) -> dict[str, Any]:
    """Run one plan under a claim on its run directory; a failure is recorded, then raised."""
    spec = plan.task.spec
    started = time.perf_counter()
    with store.claim(plan.run_id) as directory, _log_to(directory / LOG):
        log.info("run %s: task %s v%s, backbone %s (%s), adapt %s, protocol %s, seed %d, device %s",
                 plan.run_id, spec.name, spec.version, plan.backbone.name, plan.asset.source, plan.adaptation,
                 plan.protocol.name, plan.seed, device)
        record = base_record(plan, device)
        try:
            result = train(plan, device, progress)
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
        "env": describe_environment(device),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


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
