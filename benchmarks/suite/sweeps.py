"""The frozen-feature cache on a seed sweep: `harness run --task keywords --adapt frozen` over 5 seeds.

The cache lives in $HARNESS_CACHE_DIR/features and has no off switch, so "without the cache" means an empty
cache directory for every seed (each run computes its features, as on a machine with no cache), and "with
it" means one cache directory that starts empty and is kept across the sweep (the first seed computes, the
others reuse). The keyword corpus (also under HARNESS_CACHE_DIR, synthesised once and fingerprinted) is
prepared first, untimed, and every cache directory links to it, so only the feature cache differs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from suite.context import Measurement, RunContext
from suite.harness_cli import call_json, protocol_name, with_cache_dir

TASK = "keywords"


def sweep_seeds(ctx: RunContext) -> list[int]:
    """Every round sweeps the same seeds (the sweep is the unit a user times): 0-4, or 0-1 with --tiny."""
    return list(range(2 if ctx.tiny else int(ctx.options.get("seeds", 5))))


def base_args(ctx: RunContext) -> list[str]:
    return ["run", "--task", TASK, "--protocol", protocol_name(ctx), "--adapt", "frozen"]


def setup(ctx: RunContext) -> dict[str, Any]:
    """Synthesise (or find) the keyword corpus in the usual cache, then one throwaway run with its own cache
    directory, so that imports, weights and data are in the OS file cache before the first timed run."""
    from harness.audio.keyword_corpus import default_cache_dir
    from harness.task import get_task

    task = get_task(TASK)
    for split in ("train", "dev", "test"):
        task.load_split(split)
    corpus = default_cache_dir() / "keywords"
    env = with_cache_dir(ctx.workdir / "warm-up-cache", str(corpus))
    _, wall = call_json([*base_args(ctx), "--seed", "99"], env)
    return {"corpus": str(corpus), "warm_up_s": round(wall, 3)}


def run_sweep(ctx: RunContext) -> Measurement:
    """options: cache 'per-seed' (an empty cache directory for each seed: no reuse) or 'shared' (one,
    empty at the start); calls 'separate' (one command per seed) or 'seeds' (one `--seeds` command).
    seconds: wall time of the whole sweep, every command included."""
    seeds, corpus = sweep_seeds(ctx), ctx.setup.get("corpus")
    shared, records = ctx.options.get("cache") == "shared", []
    started = time.perf_counter()
    if ctx.options.get("calls") == "seeds":
        env = with_cache_dir(ctx.workdir / "cache", corpus)
        out, _ = call_json([*base_args(ctx), "--seeds", ",".join(map(str, seeds))], env)
        records = out if isinstance(out, list) else [out]
    else:
        for seed in seeds:
            env = with_cache_dir(ctx.workdir / ("cache" if shared else f"cache-seed{seed}"), corpus)
            records.append(call_json([*base_args(ctx), "--seed", str(seed)], env)[0])
    seconds = time.perf_counter() - started
    return Measurement(seconds, sweep_scores(records), extra=sweep_facts(records, ctx.workdir))


def sweep_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """Each test metric's mean over the sweep's seeds."""
    names = dict.fromkeys(k for r in records for k in r["metrics"])
    return {k: statistics.fmean(r["metrics"][k] for r in records if k in r["metrics"]) for k in names}


def sweep_facts(records: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    return {"seeds": [r["seed"] for r in records], "primary": [r["primary"] for r in records],
            "feature_cache": [cache_use(r) for r in records],
            "features_s": [r["timing"].get("features_s") for r in records],
            "train_s": [r["timing"].get("train_s") for r in records],
            "total_s": [r["timing"].get("total_s") for r in records], "workdir": str(workdir)}


def cache_use(record: dict[str, Any]) -> str | None:
    """'hit' or 'miss': in the record's `execution` block (older records kept it in `timing`)."""
    return record.get("execution", {}).get("feature_cache", record["timing"].get("feature_cache"))
