"""Contenders that are the harness itself, through its real command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from suite.context import Measurement, RunContext


def harness_command() -> list[str]:
    """The `harness` console script beside this Python (what a user types), else `python -m harness`."""
    script = Path(sys.executable).with_name("harness")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness"]


def call(args: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> tuple[str, float]:
    """Run `harness ARGS`; (stdout, wall seconds). A non-zero exit raises with the end of its stderr."""
    started = time.perf_counter()
    proc = subprocess.run([*harness_command(), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"harness {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout, wall


def call_json(args: list[str], env: dict[str, str] | None = None) -> tuple[Any, float]:
    """`harness ARGS --json --quiet`: (the parsed JSON on stdout, wall seconds)."""
    out, wall = call([*args, "--json", "--quiet"], env)
    return json.loads(out), wall


def protocol_name(ctx: RunContext) -> str:
    """--tiny runs every training benchmark on the task's `smoke` protocol (tiny limits, 1 epoch)."""
    return "smoke" if ctx.tiny else str(ctx.options.get("protocol", "quick"))


def with_cache_dir(cache: Path, corpus: str | None) -> dict[str, str]:
    """An environment whose HARNESS_CACHE_DIR is `cache`, sharing an already synthesised keyword corpus
    (`corpus`: a `keywords` folder) so that only the feature cache starts empty."""
    cache.mkdir(parents=True, exist_ok=True)
    if corpus and not (cache / "keywords").exists():
        (cache / "keywords").symlink_to(corpus, target_is_directory=True)
    return dict(os.environ, HARNESS_CACHE_DIR=str(cache))


def run_task(ctx: RunContext) -> Measurement:
    """`harness run --task T --protocol P --seed S`: seconds = the record's training time (timing.train_s,
    the epochs without dev evaluation), scores = its test metrics."""
    args = ["run", "--task", ctx.options["task"], "--protocol", protocol_name(ctx), "--seed", str(ctx.seed),
            *ctx.options.get("args", [])]
    record, wall = call_json(args)
    return Measurement(seconds=float(record["timing"]["train_s"]), scores=record["metrics"],
                       extra={"run_id": record["run_id"], "command_wall_s": round(wall, 3),
                              "timing": record["timing"], "execution": record.get("execution"),
                              "best_epoch": record.get("best_epoch"), "protocol": record["config"]["protocol"]})
