"""Benchmark: how much the frozen-feature cache saves on a second run (another seed).

    python benchmarks/feature_cache.py [--task keywords] [--protocol quick]

Runs `harness run --task T --adapt frozen --seed 0` with an empty feature cache (features computed),
then `--seed 1` (features reused), both through the real CLI, in fresh run directories, and prints the
wall time of each and their ratio. The data set itself (e.g. the synthesised keyword corpus) is prepared
first and not timed. The reference (the cold run) is measured in the same process, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness", *args, "--json", "--quiet"], env=env,
                         capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="keywords")
    parser.add_argument("--protocol", default="quick")
    parser.add_argument("--backbone", default=None)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HARNESS_RUNS_DIR=str(Path(tmp) / "runs"), HF_HUB_OFFLINE="1")
        base = ["run", "--task", opts.task, "--protocol", opts.protocol, "--adapt", "frozen"]
        if opts.backbone:
            base += ["--backbone", opts.backbone]
        # Prepare the data (and warm the OS file cache) with a throwaway run, then empty the feature cache.
        cache = Path(env.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")
        timed_run([*base, "--seed", "99"], env)
        shutil.rmtree(cache / "features", ignore_errors=True)
        cold_s, cold = timed_run([*base, "--seed", "0"], env)
        warm_s, warm = timed_run([*base, "--seed", "1"], env)
    print(f"task {opts.task}, protocol {opts.protocol}, backbone {cold['backbone']}, adapt frozen")
    print(f"seed 0, features computed: {cold_s:7.1f} s  (cache {cold['timing'].get('feature_cache')}, "
          f"features {cold['timing'].get('features_s')} s)  {cold['primary_metric']} {cold['primary']:.4f}")
    print(f"seed 1, features reused:   {warm_s:7.1f} s  (cache {warm['timing'].get('feature_cache')}, "
          f"features {warm['timing'].get('features_s')} s)  {warm['primary_metric']} {warm['primary']:.4f}")
    print(f"speed-up of the second run: {cold_s / warm_s:.1f}x")


if __name__ == "__main__":
    main()
