"""The engine: contenders alternate within each round, every run in a fresh process, then statistics.

A benchmark runs its setup once (untimed), then for round i = 0..R-1 every contender in turn (A B C, A B C,
...) with seed i. Alternating, rather than all rounds of A then all of B, spreads slow drifts of the
machine (other load, thermal state, file cache) over every contender alike. Each run is a new Python
process (benchmarks/worker.py) with HF_HUB_OFFLINE=1 and an empty HARNESS_RUNS_DIR of its own, so no
contender inherits memory, threads, imports or stored runs from another.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.context import RunContext

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "benchmarks" / "worker.py"


class BenchmarkError(RuntimeError):
    """A benchmark that cannot run at all (its setup failed)."""


@dataclass(frozen=True)
class Contender:
    name: str
    target: str  # "suite.module:function", called with a RunContext in a fresh process
    options: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # one line for the report: what this contender is


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    timed: str  # what a run's `seconds` measures, in words (the ratio is of these)
    contenders: tuple[Contender, ...]
    reference: str  # the contender every ratio is against
    scores: tuple[str, ...] = ()  # score names to tabulate, main one first
    setup: str | None = None  # "suite.module:function" run once, untimed, in a fresh process
    default_rounds: int = 2
    notes: tuple[str, ...] = ()

    def contender(self, name: str) -> Contender:
        return next(c for c in self.contenders if c.name == name)


def schedule(contenders: Sequence[Contender], rounds: int) -> list[tuple[int, Contender]]:
    """(round, contender) in run order: every contender once per round, in the same order each round."""
    return [(r, c) for r in range(rounds) for c in contenders]


def contender_env(workdir: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, offline, with an empty runs directory of the run's own."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HARNESS_RUNS_DIR": str(workdir / "runs"), "PYTHONUNBUFFERED": "1"})
    env.update(overrides or {})
    return env


def in_fresh_process(target: str, context: RunContext, env: dict[str, str],
                     timeout: float | None) -> tuple[dict[str, Any] | None, float, str | None]:
    """Run `target(context)` through the worker: (its JSON result or None, wall seconds, error or None)."""
    workdir = context.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    spec, out, log = workdir / "context.json", workdir / "result.json", workdir / "worker.log"
    spec.write_text(json.dumps({"target": target, "context": context.to_dict(), "out": str(out)}), encoding="utf-8")
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8") as sink:
            proc = subprocess.run([sys.executable, str(WORKER), str(spec)], env=env, cwd=REPO, stdout=sink,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = f"timeout after {timeout:.0f} s"
    wall = time.perf_counter() - started
    if code == 0 and out.is_file():
        return json.loads(out.read_text(encoding="utf-8")), wall, None
    return None, wall, f"exit {code}: {tail(log)}"


def tail(path: Path, lines: int = 6) -> str:
    """The last lines of a log, joined on one line (what went wrong, for the report)."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run_setup(bench: Benchmark, root: Path, tiny: bool, timeout: float | None) -> dict[str, Any]:
    """The benchmark's untimed preparation; its result reaches every contender as `context.setup`."""
    if bench.setup is None:
        return {}
    context = RunContext(bench.name, "(setup)", 0, tiny, root / "setup")
    result, wall, error = in_fresh_process(bench.setup, context, contender_env(context.workdir), timeout)
    if result is None:
        raise BenchmarkError(f"{bench.name}: setup failed after {wall:.0f} s: {error}")
    return result | {"setup_wall_s": round(wall, 3)}


def run_contender(bench: Benchmark, contender: Contender, round_: int, tiny: bool, setup: dict[str, Any],
                  root: Path, timeout: float | None) -> dict[str, Any]:
    """One timed run of one contender in round `round_` (seed = round); its row for the report."""
    workdir = root / f"round{round_}-{contender.name}"
    context = RunContext(bench.name, contender.name, round_, tiny, workdir, dict(contender.options),
                         {k: v for k, v in setup.items() if k != "env"})
    env = contender_env(workdir, setup.get("env"))
    result, wall, error = in_fresh_process(contender.target, context, env, timeout)
    row = {"round": round_, "seed": round_, "contender": contender.name, "wall_s": round(wall, 3), "error": error}
    if result is None:
        return row | {"seconds": None, "scores": {}, "extra": {}}
    return row | {"seconds": result["seconds"], "scores": result.get("scores", {}), "extra": result.get("extra", {})}


def run_benchmark(bench: Benchmark, rounds: int, tiny: bool, echo: Callable[[str], None] = print,
                  timeout: float | None = None) -> dict[str, Any]:
    """Setup, then every round's alternating runs; the benchmark's result (see `assemble`)."""
    echo(f"[{bench.name}] {len(bench.contenders)} contenders x {rounds} rounds"
         + (" (setup first, untimed)" if bench.setup else ""))
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.name}-") as tmp:
        root = Path(tmp)
        setup = run_setup(bench, root, tiny, timeout)
        if bench.setup:
            echo(f"[{bench.name}] setup done in {setup['setup_wall_s']:.1f} s")
        runs = []
        for round_, contender in schedule(bench.contenders, rounds):
            row = run_contender(bench, contender, round_, tiny, setup, root, timeout)
            echo(progress_line(bench, rounds, row))
            runs.append(row)
    return assemble(bench, rounds, tiny, setup, runs)


def progress_line(bench: Benchmark, rounds: int, row: dict[str, Any]) -> str:
    head = f"[{bench.name}] round {row['round'] + 1}/{rounds} seed {row['seed']} {row['contender']:<16}"
    if row["error"]:
        return f"{head} FAILED ({row['wall_s']:.1f} s): {row['error']}"
    scores = "  ".join(f"{k} {row['scores'][k]:.4g}" for k in bench.scores if k in row["scores"])
    return f"{head} {row['seconds']:9.3f} s  (wall {row['wall_s']:.1f} s)  {scores}"


def summarise(runs: Sequence[dict[str, Any]], contenders: Sequence[str], reference: str) -> dict[str, dict[str, Any]]:
    """Per contender: median/min/max seconds, the ratio of its median to the reference's median, the mean
    of each score over its successful runs (one per seed), the median wall time, and failures."""
    summary: dict[str, dict[str, Any]] = {}
    for name in contenders:
        ok = [r for r in runs if r["contender"] == name and r["error"] is None]
        seconds = [float(r["seconds"]) for r in ok]
        score_names = dict.fromkeys(k for r in ok for k in r["scores"])
        summary[name] = {
            "runs": len(ok), "failed": sum(1 for r in runs if r["contender"] == name and r["error"] is not None),
            "median_s": statistics.median(seconds) if seconds else None,
            "min_s": min(seconds) if seconds else None, "max_s": max(seconds) if seconds else None,
            "wall_median_s": statistics.median(r["wall_s"] for r in ok) if ok else None,
            "seeds": [r["seed"] for r in ok],
            "scores": {k: statistics.fmean(r["scores"][k] for r in ok if k in r["scores"]) for k in score_names},
        }
    base = summary.get(reference, {}).get("median_s")
    for item in summary.values():
        item["ratio"] = item["median_s"] / base if base and item["median_s"] is not None else None
    return summary


def assemble(bench: Benchmark, rounds: int, tiny: bool, setup: dict[str, Any],
             runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's whole result, JSON-ready (the report is rendered from it)."""
    names = [c.name for c in bench.contenders]
    return {
        "benchmark": bench.name, "title": bench.title, "timed": bench.timed, "reference": bench.reference,
        "rounds": rounds, "tiny": tiny, "score_names": list(bench.scores), "notes": list(bench.notes),
        "contenders": [{"name": c.name, "note": c.note, "options": c.options} for c in bench.contenders],
        "setup": {k: v for k, v in setup.items() if k != "env"},
        "summary": summarise(runs, names, bench.reference), "runs": runs,
    }
