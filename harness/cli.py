"""Command line: argument parsing, output formatting, exit codes. The work happens in api.

Exit codes: 0 success, 2 bad usage or input, 1 a run that failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import harness
from harness.errors import HarnessError, UsageError

log = logging.getLogger("harness")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed '{text}': expected a non-negative integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed '{text}': expected a non-negative integer")
    return value


def _seed_list(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list of seeds, e.g. 0,1,2")
    return [_seed(p) for p in parts]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Multimodal task-suite benchmark harness.")
    parser.add_argument("--version", action="version", version=f"harness {harness.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_list = sub.add_parser("list", help="list tasks, backbones, protocols or stored runs")
    p_list.add_argument("what", nargs="?", choices=("tasks", "backbones", "protocols", "leaderboards", "runs"),
                        default=None)
    p_list.add_argument("--runs-dir", help="where runs are stored (default ./runs or $HARNESS_RUNS_DIR)")
    p_list.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p_run = sub.add_parser("run", help="fine-tune and evaluate a backbone on a task")
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
    p_run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p_run.add_argument("--runs-dir", help="where runs are stored (default ./runs or $HARNESS_RUNS_DIR)")
    p_run.add_argument("--force", action="store_true", help="rerun even if an identical complete run exists")
    p_run.add_argument("--deterministic", action="store_true", help="ask torch for deterministic kernels")
    p_run.add_argument("--explain", action="store_true",
                       help="then explain each run: attributions, faithfulness, summaries (see 'harness explain')")
    p_run.add_argument("--json", action="store_true", help="print the run records as JSON on stdout")
    p_run.add_argument("--quiet", action="store_true", help="no progress output")

    p_explain = sub.add_parser("explain", help="explain a stored run: attributions, faithfulness numbers, summaries")
    p_explain.add_argument("run_id", help="run id (or an unambiguous prefix)")
    p_explain.add_argument("--runs-dir", help="where runs are stored (default ./runs or $HARNESS_RUNS_DIR)")
    p_explain.add_argument("--data-dir", help="the task's data folder, for tasks whose data is not packaged")
    p_explain.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p_explain.add_argument("--force", action="store_true", help="recompute even if a stored explanation exists")
    p_explain.add_argument("--json", action="store_true", help="print the explanation block as JSON")
    p_explain.add_argument("--quiet", action="store_true", help="no progress output")

    p_report = sub.add_parser("report", help="write a leaderboard report (Markdown, HTML, CSV, JSON, plots)")
    p_report.add_argument("--leaderboard", help="a leaderboard name (default: every complete run of one protocol)")
    p_report.add_argument("--protocol", help="which protocol's runs, when reporting a whole runs directory")
    p_report.add_argument("--runs-dir", help="where runs are stored (default ./runs or $HARNESS_RUNS_DIR)")
    p_report.add_argument("--out", help="output folder (default reports/NAME)")
    p_report.add_argument("--json", action="store_true", help="print the report data as JSON")

    p_compare = sub.add_parser("compare", help="paired comparison of two or more models on the same tasks")
    p_compare.add_argument("--backbones", required=True,
                           help="models to compare: BACKBONE[:ADAPT],..., e.g. minilm:frozen,minilm:full")
    p_compare.add_argument("--tasks", type=lambda s: [t for t in s.split(",") if t], help="t1,t2 (default: all shared)")
    p_compare.add_argument("--protocol", help="which protocol's runs (needed when several are stored)")
    p_compare.add_argument("--runs-dir", help="where runs are stored (default ./runs or $HARNESS_RUNS_DIR)")
    p_compare.add_argument("--out", help="output folder (default reports/compare/A-vs-B)")
    p_compare.add_argument("--json", action="store_true", help="print the comparison as JSON")

    p_show = sub.add_parser("show", help="show a stored run")
    p_show.add_argument("run_id", help="run id (or an unambiguous prefix)")
    p_show.add_argument("--runs-dir", help="where runs are stored (default ./runs or $HARNESS_RUNS_DIR)")
    p_show.add_argument("--json", action="store_true", help="print the run record as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    _setup_logging(debug)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        commands = {"list": _cmd_list, "run": _cmd_run, "show": _cmd_show, "report": _cmd_report,
                    "compare": _cmd_compare, "explain": _cmd_explain}
        return commands[args.command](args)
    except HarnessError as exc:
        if debug:
            log.exception("details")
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted (an unfinished run restarts cleanly when run again)", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"harness: error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    log.propagate = False


# --- commands ---------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    from harness import api

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
        "runs": ["run_id", "status", "task", "backbone", "adapt", "protocol", "seed", "primary_metric",
                 "primary_value"],
    }
    for i, section in enumerate(sections):
        if len(sections) > 1:
            print(("\n" if i else "") + section.upper())
        print(_table(data[section], columns[section]) if data[section] else f"(no {section})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from harness import api

    seeds = args.seeds or [args.seed if args.seed is not None else 0]
    if args.quiet:  # only the terminal goes quiet: the run's own run.log keeps every line
        for handler in log.handlers:
            handler.setLevel(logging.WARNING)
    if args.leaderboard:
        return _run_leaderboard(args)
    outcomes = api.run(args.task, backbone=args.backbone, protocol=args.protocol, seeds=seeds, adapt=args.adapt,
                       device=args.device, runs_dir=args.runs_dir, force=args.force,
                       deterministic=args.deterministic, progress=not args.quiet, data_dir=args.data_dir,
                       explain=args.explain)
    records = [o.record for o in outcomes]
    if args.json:
        print(json.dumps(records if len(records) > 1 else records[0], indent=2))
        return 0
    for outcome in outcomes:
        print(_summary(outcome.record, reused=outcome.reused))
        if "explanation" in outcome.record:
            print(_explanation_summary(outcome.record["explanation"]))
    if len(records) > 1:
        print(_seed_summary(records))
    return 0


def _run_leaderboard(args: argparse.Namespace) -> int:
    from harness.leaderboard import load_leaderboard, run_leaderboard

    given = [f"--{n.replace('_', '-')}" for n in ("task", "backbone", "protocol", "seed", "seeds", "adapt", "data_dir")
             if getattr(args, n) is not None]
    if given or args.force:
        raise UsageError(f"--leaderboard takes its tasks, models, seeds and protocol from its definition; "
                         f"drop {', '.join(given + (['--force'] if args.force else []))}")
    board = load_leaderboard(args.leaderboard)
    summary = run_leaderboard(board, runs_dir=args.runs_dir, device=args.device, progress=not args.quiet,
                              explain=args.explain)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"leaderboard {board.name}: {len(board.cells())} cells, {len(summary['ran'])} run now, "
              f"{len(summary['reused'])} already complete, {len(summary['failed'])} failed")
        for task, model, seed, error in summary["failed"]:
            print(f"  failed: {task} / {model} / seed {seed}: {error}")
    return 1 if summary["failed"] else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness import api

    data, folder = api.report(args.leaderboard, args.runs_dir, args.out, args.protocol)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [{"task": c["task"], "model": c["model"], "seeds": ",".join(map(str, c["seeds"])) or "-",
             "primary": c["estimate"], "ci": "-" if c["low"] is None else f"[{c['low']:.4g}, {c['high']:.4g}]",
             "complete": "yes" if c["complete"] else "NO"} for c in data["cells"]]
    print(_table(rows, ["task", "model", "seeds", "primary", "ci", "complete"]))
    for line in data["missing"]:
        print(f"missing: {line}")
    for item in data["excluded"]:
        print(f"left out: {item['run_id']}: {item['reason']}")
    print(f"report written to {folder}/ (README.md, index.html, leaderboard.csv, leaderboard.json, plots)")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness import api

    data, folder = api.compare(args.backbones, args.tasks, args.protocol, args.runs_dir, args.out)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [r | {"interval": f"[{r['low']:.4g}, {r['high']:.4g}]"} for r in data["rows"]]
    print(_table(rows, ["task", "seed", "a", "b", "metric", "score_a", "score_b", "difference", "interval",
                        "p_value", "p_holm", "outcome"]))
    for s in data["summary"]:
        print(f"{s['a']} vs {s['b']}: {s['win']} wins, {s['tie']} ties, {s['loss']} losses "
              f"(Holm-corrected, alpha {data['alpha']})")
    for note in data["notes"]:
        print(f"note: {note}")
    print(f"comparison written to {folder}/ (README.md, index.html, comparison.json, comparison.csv)")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from harness import api

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
    print(_explanation_summary(block))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from harness import api

    record = api.show(args.run_id, args.runs_dir)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(_summary(record, reused=False, detail=True))
    return 0


# --- formatting -------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [columns] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _summary(record: dict[str, Any], reused: bool, detail: bool = False) -> str:
    head = (f"{record['task']}  backbone {record['backbone']}  adapt {record['adapt']}  "
            f"protocol {record['protocol']}  seed {record['seed']}")
    lines = [head, f"  run {record['run_id']}  status {record['status']}"
                   + ("  (stored result reused; --force reruns)" if reused else "")]
    if record.get("status") != "complete":
        lines.append(f"  error: {record.get('error', 'unfinished')}")
        return "\n".join(lines)
    metrics = record["metrics"]
    primary = record["primary_metric"]
    main = [f"{primary} {metrics[primary]:.4f}"] + [
        f"{k} {v:.4f}" for k, v in metrics.items() if k != primary and not k.startswith("f1_")]
    what = "evaluation episodes" if "algo" in record["config"]["protocol"] else "examples"
    lines.append(f"  test ({record['n_examples']} {what}): " + "  ".join(main))
    per_type = {k[3:]: v for k, v in metrics.items() if k.startswith("f1_")}
    if per_type:
        lines.append("  F1 per type: " + "  ".join(f"{k} {v:.3f}" for k, v in per_type.items()))
    timing = record.get("timing", {})
    if timing:
        unit = "env steps/s" if "algo" in record["config"]["protocol"] else "train examples/s"
        lines.append(f"  time: train {timing.get('train_s', 0):.1f}s, test {timing.get('eval_s', 0):.1f}s, "
                     f"{timing.get('train_examples_per_s', 0):.1f} {unit}, "
                     f"peak memory {timing.get('peak_mem_mb', 0):.0f} MB")
    if detail and "explanation" in record:
        lines.append(_explanation_summary(record["explanation"]))
    if detail:
        lines.append(f"  best epoch {record.get('best_epoch')}  config hash {record['config_hash'][:16]}  "
                     f"created {record['created_at']}")
        env = record.get("env", {})
        lines.append("  env: " + "  ".join(f"{k} {v}" for k, v in env.items() if v))
    return "\n".join(lines)


def _interval(entry: dict[str, Any] | None) -> str:
    return "-" if not entry else f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _explanation_summary(block: dict[str, Any]) -> str:
    """The explanation block of a run record: method, cost, faithfulness with 95% intervals, highlights."""
    f = block["faithfulness"]
    lines = [f"  explained {block['n_items']} x {block['target']} in {block['seconds']:.1f}s: {block['method']}"]
    for curve, better in (("deletion", "lower"), ("insertion", "higher")):
        if f"{curve}_auc" in f:
            versus = f.get(f"{curve}_vs_random", {})
            p = f", Wilcoxon p {versus['p_value']:.2g}" if versus else ""
            lines.append(f"  {curve} AUC {_interval(f[f'{curve}_auc'])} vs random ranking "
                         f"{_interval(f.get(f'{curve}_auc_random'))} ({better} is faithful{p})")
    lines.append(f"  comprehensiveness {_interval(f.get('comprehensiveness'))}, "
                 f"sufficiency {_interval(f.get('sufficiency'))} (ERASER AOPC; high, low are faithful)")
    lines.append(f"  randomisation check: Spearman {_interval(f.get('randomisation_spearman'))} "
                 f"({block['randomisation']}; low passes)")
    details = []
    if f.get("units"):
        details.append(f"{f['units']['median']:g} units per item (median)")
    if f.get("constant_attributions"):
        details.append(f"{f['constant_attributions']} constant attribution(s), ranked at random")
    if f.get("ig_completeness_gap"):
        details.append(f"integrated-gradients completeness gap {_interval(f['ig_completeness_gap'])}")
    if details:
        lines.append("  " + "; ".join(details))
    if block.get("prediction_agreement") is not None:
        lines.append(f"  rebuilt model agrees with the stored predictions on {block['prediction_agreement']:.0%}")
    for group, line in block.get("highlights", {}).items():
        lines.append(f"  {group}: {line}")
    return "\n".join(lines)


def _seed_summary(records: list[dict[str, Any]]) -> str:
    """Across seeds: IQM with a stratified-bootstrap interval for RL (Agarwal et al. 2021), else the mean
    with a bootstrap interval over seeds, plus the spread."""
    import statistics

    from harness.stats import bootstrap_ci, stratified_bootstrap_iqm

    done = [r for r in records if r.get("status") == "complete"]
    if not done:
        return "no complete runs"
    task, metric = done[0]["task"], done[0]["primary_metric"]
    values = [r["primary"] for r in done]
    spread = f", sd {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    if "algo" in done[0]["config"]["protocol"]:
        interval = stratified_bootstrap_iqm({task: values}, seed=0)
        label = f"IQM of {metric} {interval.estimate:.4f}"
    else:
        interval = bootstrap_ci(values, statistic="mean", seed=0)
        label = f"mean {metric} {interval.estimate:.4f}"
    return (f"{task} over {len(values)} seeds: {label}, 95% CI [{interval.low:.4f}, {interval.high:.4f}]{spread}, "
            f"min {min(values):.4f}, max {max(values):.4f}")
