"""The benchmark suite: speed ratios (and scores) of the harness against its alternatives, in one invocation.

    python benchmarks/run.py [--only NAME[,NAME]] [--rounds N] [--tiny] [--out DIR] [--list]

Benchmarks: ner, sentiment, fashion-mnist, feature-cache, startup (see benchmarks/README.md). Each runs
its contenders alternately (A B C, A B C, ...) for N rounds (default 2; startup 5), every run in a fresh
process with HF_HUB_OFFLINE=1 and an empty HARNESS_RUNS_DIR, round i with seed i, and writes
`<benchmark>-<machine>.md` and `.json` to benchmarks/results/ (or --out): per contender the median, min and
max seconds, the ratio of its median to the reference contender's, and its mean scores, with a description
of the machine. --tiny shrinks everything (smoke protocols, 2 seeds in sweeps) to check the plumbing; its
files end in `-tiny`. Exit status 1 when a benchmark or any run failed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from suite.core import Benchmark, BenchmarkError, run_benchmark
from suite.definitions import BENCHMARKS
from suite.machine import describe_line, describe_machine
from suite.report import RESULTS, summary_table, write_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated benchmarks (default all: {', '.join(BENCHMARKS)})")
    parser.add_argument("--rounds", type=int, help="rounds per benchmark (default 2; startup 5)")
    parser.add_argument("--tiny", action="store_true", help="a few seconds per run: checks the plumbing only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go (default benchmarks/results)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their contenders, then exit")
    parser.add_argument("--timeout", type=float, help="seconds one run may take (default: none; 900 with --tiny)")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def select(only: str | None) -> list[Benchmark]:
    """The benchmarks --only names, in the suite's order; an unknown name is a usage error."""
    if not only:
        return list(BENCHMARKS.values())
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"run.py: error: unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    return [BENCHMARKS[n] for n in BENCHMARKS if n in names]


def rounds_for(bench: Benchmark, args: argparse.Namespace) -> int:
    if args.rounds is not None:
        return args.rounds
    return 2 if args.tiny else bench.default_rounds


def list_benchmarks() -> None:
    for bench in BENCHMARKS.values():
        print(f"{bench.name}: {bench.title} (reference: {bench.reference})")
        for contender in bench.contenders:
            print(f"  {contender.name:<16} {contender.note}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_benchmarks()
        return 0
    benches = select(args.only)
    command = shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    timeout = args.timeout or (900.0 if args.tiny else None)
    machine = describe_machine()
    print(f"machine: {describe_line(machine)}", flush=True)
    failed = False
    for bench in benches:
        try:
            result = run_benchmark(bench, rounds_for(bench, args), args.tiny,
                                   echo=lambda line: print(line, flush=True), timeout=timeout)
        except BenchmarkError as exc:
            print(f"[{bench.name}] {exc}", flush=True)
            failed = True
            continue
        failed |= any(r["error"] for r in result["runs"])
        markdown, data = write_result(result, machine, command, args.out)
        print(f"\n{bench.name}: {result['timed']}")
        print("\n".join(summary_table(result)))
        print(f"written: {markdown}, {data}\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
