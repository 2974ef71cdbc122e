"""A whole leaderboard from scratch: its wall time, and every model's scores and run seconds beside a reference.

    python benchmarks/board.py --leaderboard cpu-default --executor ray --store /tmp/board \\
        --reference /tmp/old/runs --out benchmarks/results/board-cpu-default

runs `harness run --leaderboard NAME [--executor E]` in a fresh process on an empty store (DIR/runs) and an
empty cache (DIR/cache): nothing computed before is reused, features and synthesised corpora included. It
times the command's wall clock, then writes Markdown and JSON: per task and model, the seeds, the mean
primary metric with its range over seeds, and the summed run seconds (`timing.total_s`), beside the same for
`--reference`, a store of the same board's runs from before (other code, another executor). With
`--summarise-only --wall S` it summarises a board that was run outside this script (S: its measured wall).

A board takes hours on a 2-core machine, so there is one measurement per contender, not alternating rounds:
the result says so, with the machine's load average at the start, and the board's span as the records show
it (first run's start to last run's end), which does not depend on who timed the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from suite.machine import describe_line, describe_machine

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaderboard", required=True)
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--store", required=True, type=Path, help="folder for the board's runs/ and cache/")
    parser.add_argument("--reference", type=Path, help="a runs folder holding the same board's runs from before")
    parser.add_argument("--reference-label", default="reference")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    parser.add_argument("--summarise-only", action="store_true", help="summarise --store's runs; run nothing")
    parser.add_argument("--wall", type=float, help="with --summarise-only: the board's measured wall seconds")
    parser.add_argument("--note", default="", help="a line for the result (e.g. the commit and load the board ran at)")
    opts = parser.parse_args(argv)
    runs = opts.store / "runs"
    machine = describe_machine()
    command = ["harness", "run", "--leaderboard", opts.leaderboard, "--quiet"] + (
        ["--executor", opts.executor] if opts.executor != "local" else [])
    if opts.summarise_only:
        wall = opts.wall
    else:
        if runs.exists() and any(runs.iterdir()):
            print(f"error: {runs} is not empty: a board from scratch needs an empty store", file=sys.stderr)
            return 2
        env = os.environ | {"HARNESS_RUNS_DIR": str(runs), "HARNESS_CACHE_DIR": str(opts.store / "cache"),
                            "HF_HUB_OFFLINE": "1", "HARNESS_OFFLINE": "1"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "harness", *command[1:]], env=env, cwd=REPO, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print(f"error: the board exited with {done.returncode}", file=sys.stderr)
            return 1
    result = summarise(opts.leaderboard, runs, opts.reference, wall)
    result |= {"executor": opts.executor, "command": shlex.join(command), "reference_label": opts.reference_label,
               "note": opts.note}
    text = to_markdown(result, describe_line(machine))
    print(text)
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
        opts.out.with_suffix(".json").write_text(json.dumps(result | {"machine": machine}, indent=1) + "\n",
                                                 encoding="utf-8")
    return 0


def board_records(name: str, runs: Path) -> list[dict[str, Any]]:
    """The completed test runs in `runs` of the board's (task, model) pairs under its protocol."""
    from harness.leaderboard import load_leaderboard
    from harness.store import RunStore
    from harness.task import TASKS

    board = load_leaderboard(name)
    pairs = {(task, model.backbone, model.adapt or TASKS.get(task).spec.default_adapt)
             for task, model in board.pairs()}
    return [record for record in RunStore(runs).records()
            if record.get("status") == "complete" and record.get("role", "test") == "test"
            and record["protocol"] == board.protocol and (record["task"], record["backbone"], record["adapt"]) in pairs]


def by_model(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[f"{record['task']} / {record['backbone']} ({record['adapt']})"].append(record)
    out = {}
    for key, rows in sorted(groups.items()):
        scores = [r["primary"] for r in rows]
        out[key] = {"seeds": sorted(r["seed"] for r in rows), "metric": rows[0]["primary_metric"],
                    "mean": statistics.fmean(scores), "min": min(scores), "max": max(scores),
                    "run_s": round(sum(r["timing"].get("total_s") or 0.0 for r in rows), 1),
                    "task_version": rows[0]["task_version"], "numerics": rows[0]["config"].get("numerics")}
    return out


def span_s(records: list[dict[str, Any]]) -> float | None:
    """First run's start to last run's end, from the records (`created_at` is stamped when a run starts)."""
    if not records:
        return None
    starts = [datetime.fromisoformat(r["created_at"]).timestamp() for r in records]
    ends = [s + (r["timing"].get("total_s") or 0.0) for s, r in zip(starts, records, strict=True)]
    return round(max(ends) - min(starts), 1)


def summarise(name: str, runs: Path, reference: Path | None, wall: float | None) -> dict[str, Any]:
    measured = board_records(name, runs)
    result: dict[str, Any] = {"leaderboard": name, "runs": len(measured), "wall_s": wall and round(wall, 1),
                              "span_s": span_s(measured), "models": by_model(measured),
                              "run_s": round(sum(r["timing"].get("total_s") or 0.0 for r in measured), 1)}
    if reference is not None:
        before = board_records(name, reference)
        result["reference"] = {"runs": len(before), "models": by_model(before),
                               "run_s": round(sum(r["timing"].get("total_s") or 0.0 for r in before), 1)}
    return result


def _score(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    return f"{row['mean']:.4g} ({row['min']:.4g} to {row['max']:.4g})"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def to_markdown(result: dict[str, Any], machine_line: str) -> str:
    reference = result.get("reference")
    label = result["reference_label"]
    lines = [f"# Leaderboard `{result['leaderboard']}` from scratch", "",
             f"`{result['command']}` on an empty store and cache, one measurement (a board takes hours here: "
             "no alternating rounds).", ""]
    if result["wall_s"] is not None:
        lines.append(f"- wall time of the command: **{minutes(result['wall_s'])}** ({result['wall_s']} s)")
    if result["span_s"] is not None:
        lines.append(f"- first run's start to last run's end, from the records: {minutes(result['span_s'])}")
    lines.append(f"- {result['runs']} runs, {minutes(result['run_s'])} of run time in all (each run's `total_s`)")
    if reference:
        lines.append(f"- {label}: {reference['runs']} runs, {minutes(reference['run_s'])} of run time in all")
    lines += ["", f"| task / model | seeds | {result['leaderboard']} mean (min to max) | run s |"
              + (f" {label} mean (min to max) | {label} run s |" if reference else ""),
              "|---|---|---|---|" + ("---|---|" if reference else "")]
    keys = sorted(set(result["models"]) | set(reference["models"] if reference else ()))
    for key in keys:
        row = result["models"].get(key)
        seeds = ",".join(map(str, row["seeds"])) if row else "–"
        cells = [key, seeds, _score(row), f"{row['run_s']:.0f}" if row else "–"]
        if reference:
            old = reference["models"].get(key)
            cells += [_score(old), f"{old['run_s']:.0f}" if old else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {machine_line}"] + (["", result["note"]] if result.get("note") else [])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
