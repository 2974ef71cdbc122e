"""The library face of the harness: what the CLI calls, usable from Python.

    from harness import api
    outcomes = api.run("ner", protocol="smoke", seeds=[0, 1])

A thin facade: planning (what runs) is `harness.planning`, running and recording is
`harness.execution`, training `harness.training`, reports `harness.report`, explanations
`harness.explain`. Modules that import torch, pandas or scipy are imported inside the functions that
need them, so `import harness.api` (and `harness list`) stays light: see docs/architecture.md, rule 2.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.backbones.spec import BACKBONES
from harness.errors import HarnessError, UsageError
from harness.leaderboard import Leaderboard, available, load_leaderboard
from harness.planning import plan_runs
from harness.progress import ProgressReporter
from harness.protocol import PROTOCOL_NAMES
from harness.store import RunStore, record_modality
from harness.task import TASKS

__all__ = [
    "HarnessError",
    "UsageError",
    "__version__",
    "compare",
    "default_runs_dir",
    "explain",
    "list_backbones",
    "list_leaderboards",
    "list_protocols",
    "list_runs",
    "list_tasks",
    "load_leaderboard",
    "plan_runs",
    "record_modality",
    "report",
    "run",
    "run_leaderboard",
    "seed_summary",
    "show",
]


def default_runs_dir() -> Path:
    return Path(os.environ.get("HARNESS_RUNS_DIR") or "runs")


def _store(runs_dir: str | Path | None) -> RunStore:
    return RunStore(runs_dir or default_runs_dir())


# --- listing ----------------------------------------------------------------------------------
def list_tasks() -> list[dict[str, Any]]:
    return [cls.spec.to_dict() | {"origin": TASKS.origin(name), "source": TASKS.source(name)}
            for name, cls in TASKS.items()]


def list_backbones() -> list[dict[str, Any]]:
    return [spec.to_dict() | {"origin": BACKBONES.origin(name), "source": BACKBONES.source(name)}
            for name, spec in BACKBONES.items()]


def list_protocols() -> list[dict[str, Any]]:
    return [{"task": name, **cls.protocols[p].to_dict()} for name, cls in TASKS.items() for p in PROTOCOL_NAMES]


def list_leaderboards() -> list[dict[str, Any]]:
    rows = []
    for name, path in available().items():
        board = load_leaderboard(str(path))
        rows.append({"name": name, "description": board.description, "protocol": board.protocol,
                     "seeds": ",".join(map(str, board.seeds)), "tasks": len(board.tasks),
                     "models": len(board.models), "cells": len(board.cells()), "path": str(path)})
    return rows


def list_runs(runs_dir: str | Path | None = None, **filters: Any) -> list[dict[str, Any]]:
    return _store(runs_dir).query(**filters)


def show(run_id: str, runs_dir: str | Path | None = None) -> dict[str, Any]:
    return _store(runs_dir).load(run_id)


# --- running ----------------------------------------------------------------------------------
def run(task: str, backbone: str | None = None, protocol: str | None = None, seeds: Sequence[int] = (0,),
        adapt: str | None = None, device: str = "auto", runs_dir: str | Path | None = None,
        force: bool = False, deterministic: bool = False, progress: bool = True,
        data_dir: str | None = None, explain: bool = False) -> list[Any]:
    """Fine-tune and evaluate; one run per seed. Complete identical runs are reused unless force.
    With explain, each complete run is then explained (a stored explanation with the same settings is kept).
    Returns `harness.execution.RunOutcome`s (record, reused)."""
    from harness.execution import explain_outcomes, run_plans
    from harness.training.train import resolve_device

    chosen = resolve_device(device)
    plans = plan_runs(task, backbone, protocol, seeds, adapt, deterministic, data_dir)
    store, reporter = _store(runs_dir), ProgressReporter(progress)
    outcomes = run_plans(plans, store, chosen, reporter, force)
    if explain:
        explain_outcomes(outcomes, store, chosen, data_dir, reporter)
    return outcomes


def run_leaderboard(leaderboard: str | Leaderboard, runs_dir: str | Path | None = None, device: str = "auto",
                    progress: bool = True, explain: bool = False) -> dict[str, Any]:
    """Run every missing cell of a leaderboard; returns {"board", "cells", "ran", "reused", "failed"}."""
    from harness.execution import run_leaderboard as run_board
    from harness.training.train import resolve_device

    board = leaderboard if isinstance(leaderboard, Leaderboard) else load_leaderboard(leaderboard)
    summary = run_board(board, _store(runs_dir), resolve_device(device), ProgressReporter(progress), explain)
    return {"board": board.name, "cells": len(board.cells())} | summary.to_dict()


def seed_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Across seeds of one task: the IQM with a stratified-bootstrap interval for RL (Agarwal et al. 2021),
    else the mean with a bootstrap interval over seeds; plus sd, min and max. None without complete runs."""
    from harness import stats  # numpy, pandas and scipy: kept out of `harness list`

    done = [r for r in records if r.get("status") == "complete"]
    if not done:
        return None
    task, metric = done[0]["task"], done[0]["primary_metric"]
    values = [r["primary"] for r in done]
    control = record_modality(done[0]) == "control"
    interval = (stats.stratified_bootstrap_iqm({task: values}, seed=0) if control
                else stats.bootstrap_ci(values, statistic="mean", seed=0))
    return {"task": task, "metric": metric, "statistic": "IQM" if control else "mean", "n": len(values),
            "estimate": interval.estimate, "low": interval.low, "high": interval.high,
            "sd": statistics.stdev(values) if len(values) > 1 else None, "min": min(values), "max": max(values)}


# --- reports and explanations -----------------------------------------------------------------
def report(leaderboard: str | None = None, runs_dir: str | Path | None = None, out: str | Path | None = None,
           protocol: str | None = None) -> tuple[dict[str, Any], Path]:
    """Build and write a leaderboard report (default folder: reports/NAME); returns (report, folder)."""
    from harness.report.leaderboard_report import build_report
    from harness.report.render import write_leaderboard

    board = load_leaderboard(leaderboard) if leaderboard else None
    if board is not None and protocol is not None and protocol != board.protocol:
        raise UsageError(f"leaderboard '{board.name}' is defined for protocol {board.protocol}, not {protocol}")
    data = build_report(_store(runs_dir), board, protocol)
    data["command"] = (f"harness run --leaderboard {board.name} --explain && harness report --leaderboard {board.name}"
                       if board is not None else f"harness report --protocol {data['protocol']}")
    folder = Path(out) if out else Path("reports") / data["name"]
    write_leaderboard(data, folder)
    return data, folder


def compare(backbones: str, tasks: Sequence[str] | None = None, protocol: str | None = None,
            runs_dir: str | Path | None = None, out: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """Paired comparison of stored runs of two or more models; written as Markdown, HTML and JSON."""
    from harness.report.compare import build_comparison, parse_models
    from harness.report.render import write_comparison

    models = parse_models(backbones)
    for task in tasks or []:
        TASKS.get(task)
    data = build_comparison(_store(runs_dir), models, list(tasks) if tasks else None, protocol)
    slug = "-vs-".join(m.replace(" (", "-").replace(")", "") for m in data["models"])
    folder = Path(out) if out else Path("reports") / "compare" / slug.replace("/", "_").replace(":", "")
    write_comparison(data, folder)
    return data, folder


def explain(run_id: str, runs_dir: str | Path | None = None, device: str = "auto", data_dir: str | None = None,
            force: bool = False, progress: bool = False) -> dict[str, Any]:
    """Explain a stored complete run (attributions, faithfulness, summaries); returns its explanation block."""
    from harness.explain.runner import explain_run
    from harness.training.train import resolve_device

    return explain_run(_store(runs_dir), run_id, resolve_device(device), data_dir, force, ProgressReporter(progress))
