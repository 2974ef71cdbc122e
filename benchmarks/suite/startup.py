"""How long the everyday commands take: help, list, show, report, and explanation seconds per item.

Setup (untimed): a leaderboard TOML in a temporary folder on HARNESS_LEADERBOARDS (smoke protocol, MiniLM
full fine-tuning; `ner` and `sentiment` x seeds 0 and 1, or one task and seed with --tiny) is run into a
store of its own. Every contender then runs its command against that store (HARNESS_RUNS_DIR points at it,
not at an empty folder: these commands read stored runs). `explain` runs with --force, so every round
recomputes the attributions; its seconds are per explained item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from suite.context import Measurement, RunContext
from suite.harness_cli import call, call_json

BOARD = "bench-startup"


def board_toml(tasks: list[str], seeds: list[int]) -> str:
    return "\n".join([
        f'name = "{BOARD}"', 'description = "benchmarks/run.py startup: a small smoke store"',
        'protocol = "smoke"', f"seeds = {json.dumps(seeds)}", f"tasks = {json.dumps(tasks)}",
        'models = [{ backbone = "minilm", adapt = "full" }]', ""])


def setup(ctx: RunContext) -> dict[str, Any]:
    """Write the board, run it into a store (untimed), and name a stored run for show and explain."""
    boards, store = ctx.workdir / "leaderboards", ctx.workdir / "store"
    boards.mkdir(parents=True, exist_ok=True)
    tasks, seeds = (["sentiment"], [0]) if ctx.tiny else (["ner", "sentiment"], [0, 1])
    (boards / f"{BOARD}.toml").write_text(board_toml(tasks, seeds), encoding="utf-8")
    env = {"HARNESS_LEADERBOARDS": str(boards), "HARNESS_RUNS_DIR": str(store)}
    summary, wall = call_json(["run", "--leaderboard", BOARD], dict(os.environ, **env))
    ran = list(summary["ran"])  # run ids
    if not ran or summary["failed"]:
        raise RuntimeError(f"building the store failed: {summary}")
    return {"env": env, "board": BOARD, "run_id": sorted(ran)[0], "runs": sorted(ran), "store_s": round(wall, 3)}


def argv(ctx: RunContext) -> list[str]:
    """The contender's command line, with {run_id}, {board} and {workdir} filled in."""
    values = {"run_id": ctx.setup.get("run_id", ""), "board": ctx.setup.get("board", ""), "workdir": ctx.workdir}
    return [str(a).format(**values) for a in ctx.options["argv"]]


def run_command(ctx: RunContext) -> Measurement:
    """seconds: the command's wall time (a fresh process: imports included)."""
    args = argv(ctx)
    out, wall = call(args)
    return Measurement(wall, extra={"argv": args, "stdout_chars": len(out)})


def run_explain(ctx: RunContext) -> Measurement:
    """`harness explain RUN_ID --force --json`: seconds per explained item (the command's wall time over
    the items); scores: the item count and the explainer's own seconds per item."""
    args = argv(ctx)
    out, wall = call(args)
    block = json.loads(out)
    items = int(block["n_items"])
    return Measurement(wall / max(items, 1), scores={"items": items, "explain_s_per_item": block["seconds"] / max(
        items, 1)}, extra={"argv": args, "command_wall_s": round(wall, 3), "method": block.get("method")})


def explain_args() -> list[str]:
    return ["explain", "{run_id}", "--force", "--json", "--quiet"]


def report_args() -> list[str]:
    return ["report", "--leaderboard", "{board}", "--out", str(Path("{workdir}") / "report")]
