"""Benchmark: a leaderboard on the local executor against Ray with 1 and 2 workers, and Ray's cost per cell.

    python benchmarks/scaling.py [--rounds 3] [--out benchmarks/results/scaling-cpu.txt]

The board has 8 smoke cells (cartpole x the control MLP full and frozen x seeds 0-3: real runs, a few
seconds each on a CPU). Each round runs every contender on a fresh runs directory, in alternating order
(local, ray x1, ray x2, then the next round starts with the next contender), and the table gives each
contender's wall time per round, the median, and the speed-up of the median over the local executor's.
Ray runs on one local instance (num_cpus=2, no dashboard), started once and not timed in the walls (its
start is printed apart), with `--max-parallel 1` and `2` and the default one CPU per cell: a Ray worker
computes with one torch thread, the local executor with torch's default (all cores), so the local
executor also runs limited to one thread ("local, 1 thread"): that row, not "local", isolates Ray's own
cost. Before the rounds, one untimed warm-up cell on each executor imports the training stack (and
starts Ray's first workers). Speed-ups are of each median over the local executor's.

Ray's overhead per cell, over every Ray cell of every round: scheduling (the worker's start minus the
driver's submit; with a cap on cells in flight, a cell is submitted when a slot frees) and shipping (the
run folder's size, and the seconds to pack it, fetch it and import it into the driver's runs directory).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

BOARD = """name = "scaling"
description = "8 smoke cells for benchmarks/scaling.py"
protocol = "smoke"
seeds = [0, 1, 2, 3]
tasks = ["cartpole"]
models = [{ backbone = "mlp", adapt = "full" }, { backbone = "mlp", adapt = "frozen" }]
"""
WARM_UP = BOARD.replace('name = "scaling"', 'name = "warm-up"').replace("[0, 1, 2, 3]", "[9]")
# (name, api.run_leaderboard options, torch threads in this process: None keeps torch's default)
CONTENDERS = [("local", {}, None), ("local, 1 thread", {}, 1),
              ("ray, 1 worker", {"executor": "ray", "max_parallel": 1}, None),
              ("ray, 2 workers", {"executor": "ray", "max_parallel": 2}, None)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 2; the median is reported)")
    parser.add_argument("--out", help="also write the table to this file")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harness-scaling-"))
    # before Ray starts: its workers inherit this environment
    os.environ.update(HF_HUB_OFFLINE="1", HARNESS_OFFLINE="1", HARNESS_CACHE_DIR=str(work / "cache"))
    logging.getLogger("harness").addHandler(logging.NullHandler())
    logging.getLogger("harness").propagate = False  # quiet: the table is the output

    import ray

    from harness import api

    board, warm_up = work / "scaling.toml", work / "warm-up.toml"
    board.write_text(BOARD)
    warm_up.write_text(WARM_UP)
    load = os.getloadavg()
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    ray_start_s = time.perf_counter() - started
    import torch

    default_threads = torch.get_num_threads()
    for name, options, _ in CONTENDERS:  # untimed: imports, Ray's first workers
        api.run_leaderboard(str(warm_up), runs_dir=work / f"warm-{name}", progress=False, **options)

    walls: dict[str, list[float]] = {name: [] for name, _, _ in CONTENDERS}
    cells: dict[str, list[dict]] = {name: [] for name, _, _ in CONTENDERS}
    for round_ in range(max(2, opts.rounds)):
        shift = round_ % len(CONTENDERS)
        for name, options, threads in CONTENDERS[shift:] + CONTENDERS[:shift]:  # alternate who goes first
            runs = work / f"runs-{round_}-{name.replace(' ', '').replace(',', '-')}"
            torch.set_num_threads(threads or default_threads)
            started = time.perf_counter()
            summary = api.run_leaderboard(str(board), runs_dir=runs, progress=False, **options)
            walls[name].append(time.perf_counter() - started)
            torch.set_num_threads(default_threads)
            assert len(summary["ran"]) == 8 and not summary["failed"], summary["failed"]
            cells[name] += summary["per_cell"]
    ray.shutdown()

    lines = table(walls, cells)
    lines += [f"torch threads: local {default_threads} (torch's default), local 1 thread 1, "
              "a Ray worker 1 (--cpus-per-run 1)",
              f"Ray start (ray.init, num_cpus=2, no dashboard): {ray_start_s:.1f} s, not in the walls above",
              f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python "
              f"{platform.python_version()}, ray {ray.__version__}; load average before: "
              + " ".join(f"{x:.2f}" for x in load)]
    text = "\n".join(lines)
    print(text)
    if opts.out:
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(f"$ python benchmarks/scaling.py {' '.join(sys.argv[1:])}\n{text}\n")


def table(walls: dict[str, list[float]], cells: dict[str, list[dict]]) -> list[str]:
    base = statistics.median(walls["local"])
    rounds = len(walls["local"])
    lines = [f"8-cell smoke board (cartpole x mlp full/frozen x seeds 0-3), {rounds} rounds, contenders alternating; "
             "speed-up: of the median over local's",
             "",
             f"{'contender':<16} {'wall per round (s)':<24} {'median s':>9} {'speed-up':>9} {'cell s (mean)':>14}",
             "-" * 76]
    for name, values in walls.items():
        median = statistics.median(values)
        per_cell = statistics.mean(c["seconds"] for c in cells[name])
        lines.append(f"{name:<16} {' '.join(f'{v:6.1f}' for v in values):<24} {median:9.1f} "
                     f"{base / median:8.2f}x {per_cell:14.1f}")
    remote = [c for name, group in cells.items() if name.startswith("ray") for c in group]
    for label, key in (("scheduling (start - submit), s", "scheduling_s"), ("shipping (pack+fetch+import), s",
                                                                             "shipping_s")):
        values = sorted(c["overhead"][key] for c in remote)
        lines.append(f"Ray {label:<33} median {statistics.median(values):6.3f}  "
                     f"p90 {values[int(0.9 * (len(values) - 1))]:6.3f}  max {values[-1]:6.3f}  ({len(values)} cells)")
    sizes = [c["overhead"]["shipped_bytes"] / 1024 for c in remote]
    lines.append(f"Ray shipped run folder, KiB           median {statistics.median(sizes):6.1f}  max {max(sizes):6.1f}")
    for name in ("ray, 1 worker", "ray, 2 workers"):
        values = sorted(c["overhead"]["scheduling_s"] for c in cells[name])
        lines.append(f"  scheduling with {name:<15} median {statistics.median(values):6.3f} s  max {values[-1]:6.3f} s")
    return [*lines, ""]


if __name__ == "__main__":
    main()
