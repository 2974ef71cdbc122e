"""The precision self-check: the same cell trained in fp32 and in bf16, and what bf16 changed.

For each seed, the paired bootstrap of the primary metric's difference (bf16 minus fp32) over the test
examples both runs scored, with its interval and p-value, beside the training seconds of each: a user sees
whether the faster precision moved the score beyond what resampling the test set explains.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from harness import stats
from harness.report.collect import example_statistics
from harness.store import RunStore


def precision_check(store: RunStore, pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
                    n_resamples: int = 2000) -> dict[str, Any]:
    """`pairs`: (fp32 record, bf16 record) per seed, complete runs of the same task, backbone and recipe."""
    rows = [_seed_row(store, fp32, bf16, n_resamples) for fp32, bf16 in pairs]
    first = pairs[0][0]
    speedups = [r["speedup"] for r in rows if r["speedup"] is not None]
    return {"task": first["task"], "backbone": first["backbone"], "adapt": first["adapt"],
            "metric": first["primary_metric"], "higher_is_better": first["higher_is_better"], "seeds": rows,
            "mean_difference": sum(r["difference"] for r in rows) / len(rows),
            "median_speedup": statistics.median(speedups) if speedups else None}


def _seed_row(store: RunStore, fp32: dict[str, Any], bf16: dict[str, Any], n_resamples: int) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": fp32["seed"], "fp32_run": fp32["run_id"], "bf16_run": bf16["run_id"],
                           "fp32": float(fp32["primary"]), "bf16": float(bf16["primary"]),
                           "difference": float(bf16["primary"]) - float(fp32["primary"]),
                           "fp32_train_s": fp32["timing"].get("train_s"), "bf16_train_s": bf16["timing"].get("train_s")}
    fast, slow = row["bf16_train_s"], row["fp32_train_s"]
    row["speedup"] = round(slow / fast, 3) if fast and slow else None
    per_example = example_statistics(store, [bf16["run_id"], fp32["run_id"]], fp32["task"])
    if per_example is None:  # no per-example decomposition (control tasks): the difference alone
        return row | {"low": None, "high": None, "p_value": None, "test": "none (no per-example scores)"}
    (x_bf16, x_fp32), metric = per_example
    paired = stats.paired_bootstrap(x_bf16, x_fp32, metric_from_sums=metric, n_resamples=n_resamples,
                                    seed=int(fp32["seed"]))
    return row | {"difference": paired.difference, "low": paired.low, "high": paired.high,
                  "p_value": paired.p_value, "test": "paired bootstrap over test examples"}
