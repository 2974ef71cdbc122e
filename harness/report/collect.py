"""Stored runs as a pandas table, and the per-example statistics that the bootstraps resample."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from harness.environment import machine_label
from harness.errors import UsageError
from harness.store import RunStore
from harness.task import TASKS

log = logging.getLogger("harness")

RUN_COLUMNS = ["run_id", "task", "task_version", "protocol", "backbone", "adapt", "seed", "primary_metric",
               "higher_is_better", "primary", "n_examples", "train_s", "train_examples_per_s", "eval_examples_per_s",
               "peak_mem_mb", "harness", "machine", "tuning", "train_cost_s", "eval_cost_examples_per_s",
               "feature_cost"]


def runs_table(store: RunStore) -> pd.DataFrame:
    """One row per complete tested run (tuning trials, scored on dev, are left out); metrics as `metric:NAME`
    columns; `tuning`: the canonical JSON of what tuning chose the run's settings (None: not tuned). Damaged
    records are left out, each with a warning naming it (stderr)."""
    records, damaged = store.scan()
    for run_id, problem in damaged:
        log.warning("warning: leaving out the damaged run %s: %s (harness show %s says how to make it again)",
                    run_id, problem, run_id)
    rows = []
    for record in records:
        if record.get("status") != "complete" or record.get("role") == "trial":
            continue
        timing = record.get("timing", {})
        row = {
            "run_id": record["run_id"], "task": record["task"], "task_version": record["task_version"],
            "protocol": record["protocol"], "backbone": record["backbone"], "adapt": record["adapt"],
            "seed": record["seed"], "primary_metric": record["primary_metric"],
            "higher_is_better": record.get("higher_is_better", True), "primary": record["primary"],
            "n_examples": record["n_examples"], "train_s": timing.get("train_s"),
            "train_examples_per_s": timing.get("train_examples_per_s"),
            "eval_examples_per_s": timing.get("eval_examples_per_s"), "peak_mem_mb": timing.get("peak_mem_mb"),
            "harness": record.get("env", {}).get("harness"),
            "machine": machine_label(record.get("env", {})),
            "tuning": _tuning_key(record.get("config", {}).get("tuning")),
        } | run_costs(record)
        row |= {f"metric:{k}": v for k, v in record["metrics"].items()}
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if not frame.empty else pd.DataFrame(columns=RUN_COLUMNS)


def run_costs(record: dict[str, Any]) -> dict[str, Any]:
    """What a run costs, for reports: `train_cost_s` and `eval_cost_examples_per_s`. A head trained on cached
    frozen features is charged what the features cost to compute (when they were computed, by this run or an
    earlier one): the train split's seconds to training, the test split's to evaluation. The dev split's are
    charged to neither, as dev evaluation is not in any run's training seconds. `feature_cost`: None (no cached
    features), "charged", or "unknown" (the features were computed before harness recorded their cost, or by
    a run that did not record it): then both costs are None, never the head's alone."""
    timing = record.get("timing", {})
    train_s, eval_rate = timing.get("train_s"), timing.get("eval_examples_per_s")
    # harness 0.1 kept the cache's "hit"/"miss" in timing; since 0.2 it is in execution
    cache_use = record.get("execution", {}).get("feature_cache") or timing.get("feature_cache")
    if cache_use not in ("hit", "miss"):
        return {"train_cost_s": train_s, "eval_cost_examples_per_s": eval_rate, "feature_cost": None}
    train_features, test_features = timing.get("features_compute_train_s"), timing.get("features_compute_test_s")
    eval_s, examples = timing.get("eval_s"), record.get("n_examples")
    if None in (train_s, train_features, test_features, eval_s, examples):
        return {"train_cost_s": None, "eval_cost_examples_per_s": None, "feature_cost": "unknown"}
    return {"train_cost_s": round(train_s + train_features, 3),
            "eval_cost_examples_per_s": round(examples / max(eval_s + test_features, 1e-9), 2),
            "feature_cost": "charged"}


def _tuning_key(tuning: Any) -> str | None:
    return json.dumps(tuning, sort_keys=True, separators=(",", ":")) if tuning else None


def model_label(backbone: str, adapt: str) -> str:
    return f"{backbone} ({adapt})"


def example_statistics(store: RunStore, run_ids: Iterable[str], task: str) -> tuple[list[np.ndarray], str] | None:
    """Aligned per-example statistics of several runs of one task (same test examples, same order),
    or None when the task has no per-example decomposition (e.g. RL: episodes differ between runs)."""
    task_cls = _task_class(task)
    metric = task_cls.spec.primary if task_cls is not None else None
    if metric is None or metric.per_example is None:
        return None
    per_run, order = [], None
    for run_id in run_ids:
        rows = store.read_predictions(run_id)
        by_id = {r["id"]: r for r in rows}
        order = order or sorted(by_id)
        if sorted(by_id) != order:
            raise UsageError(f"run {run_id} was tested on other examples than its peers; not comparable")
        per_run.append(metric.example_statistics([by_id[i]["pred"] for i in order], [by_id[i]["ref"] for i in order]))
    return per_run, metric.reducer


def _task_class(task: str) -> Any:
    try:
        return TASKS.get(task)
    except UsageError:  # a task whose plugin is no longer installed: its numbers still report
        return None
