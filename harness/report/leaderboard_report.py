"""A leaderboard's numbers: per task x model the primary metric over seeds with an interval that
accounts for seeds and test examples, secondary metrics, efficiency, and a scale-free aggregate.

Rules that keep numbers honest: only runs of the board's protocol and of each task's current version
are used (others are listed as excluded, with the reason); a cell missing a seed is shown as
incomplete and left out of every aggregate; aggregates compare models only on the tasks they share.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

import harness
from harness import stats
from harness.backbones.spec import BACKBONES
from harness.errors import UsageError
from harness.leaderboard import Leaderboard, ModelSelection
from harness.report.collect import example_statistics, model_label, runs_table
from harness.report.explanations import explanation_sections
from harness.store import RunStore
from harness.task import TASKS

EFFICIENCY = ["train_s", "train_examples_per_s", "eval_examples_per_s", "peak_mem_mb"]


def build_report(store: RunStore, board: Leaderboard | None = None, protocol: str | None = None,
                 n_resamples: int = 2000) -> dict[str, Any]:
    runs = runs_table(store)
    board = board or _board_from_runs(runs, protocol)
    tasks = [_task_info(t) for t in board.tasks]
    versions = {t["name"]: t["version"] for t in tasks}
    pairs = board.pairs()
    wanted = {(task, m.label) for task, m in pairs}
    runs = runs.assign(model=[model_label(b, a) for b, a in zip(runs["backbone"], runs["adapt"], strict=True)])
    in_board = runs[[(t, m) in wanted for t, m in zip(runs["task"], runs["model"], strict=True)]]
    excluded = []
    for _, run in in_board.iterrows():
        reasons = []
        if run["protocol"] != board.protocol:
            reasons.append(f"protocol {run['protocol']}, this leaderboard uses {board.protocol}")
        if versions.get(run["task"]) and run["task_version"] != versions[run["task"]]:
            reasons.append(f"task version {run['task_version']}, the current one is {versions[run['task']]}")
        if run["seed"] not in board.seeds:
            reasons.append(f"seed {run['seed']} is not among the leaderboard's seeds")
        if reasons:
            excluded.append({"run_id": run["run_id"], "reason": "; ".join(reasons)})
    bad = {e["run_id"] for e in excluded}
    used = in_board[~in_board["run_id"].isin(bad)]

    cells = [_cell(store, task, m.label, m.name, board, used, n_resamples)
             for task, m in pairs]
    return {
        "name": board.name,
        "description": board.description,
        "protocol": board.protocol,
        "seeds": list(board.seeds),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness_version": harness.__version__,
        "run_harness_versions": sorted({str(v) for v in used["harness"].dropna()}),
        "tasks": tasks,
        "models": list(dict.fromkeys(m.label for _, m in pairs)),
        "cells": cells,
        "aggregate": _aggregate(cells, tasks, n_resamples),
        "excluded": excluded,
        "missing": [f"{c['task']} / {c['model']}: seeds {', '.join(map(str, c['missing_seeds']))}"
                    for c in cells if c["missing_seeds"]],
        "explanations": explanation_sections(store, [(c["task"], c["model"], c["run_ids"]) for c in cells]),
    }


def _task_info(name: str) -> dict[str, Any]:
    spec = TASKS.get(name).spec
    return {"name": name, "version": spec.version, "modality": spec.modality, "primary_metric": spec.primary.name,
            "higher_is_better": spec.primary.higher_is_better, "description": spec.description,
            "metrics": [m.name for m in spec.metrics]}


def _cell(store: RunStore, task: str, model: str, backbone: str, board: Leaderboard, used: pd.DataFrame,
          n_resamples: int) -> dict[str, Any]:
    rows = used[(used["task"] == task) & (used["model"] == model)].sort_values("seed")
    rows = rows.drop_duplicates("seed", keep="last")
    seeds = [int(s) for s in rows["seed"]]
    cell: dict[str, Any] = {"task": task, "model": model, "backbone": backbone, "seeds": seeds,
                            "missing_seeds": [s for s in board.seeds if s not in seeds],
                            "run_ids": list(rows["run_id"])}
    cell["complete"] = not cell["missing_seeds"]
    if rows.empty:
        return cell | {"estimate": None, "low": None, "high": None, "method": None, "secondary": {},
                       "efficiency": {}, "per_seed": []}
    estimate, low, high, method = _interval(store, task, rows, n_resamples)
    metric_columns = [c for c in rows.columns if c.startswith("metric:") and rows[c].notna().all()]
    return cell | {
        "estimate": estimate, "low": low, "high": high, "method": method,
        "per_seed": [float(v) for v in rows["primary"]],
        "secondary": {c.removeprefix("metric:"): float(rows[c].mean()) for c in metric_columns},
        "efficiency": {"params": _params(backbone), **{k: _mean(rows[k]) for k in EFFICIENCY}},
    }


def _interval(store: RunStore, task: str, rows: pd.DataFrame, n_resamples: int) -> tuple[float, float, float, str]:
    """Hierarchical bootstrap (seeds, then shared test examples) where the metric decomposes per example;
    otherwise (RL) a bootstrap of the per-seed scores: IQM for control tasks (Agarwal et al. 2021)."""
    per_example = example_statistics(store, list(rows["run_id"]), task)
    if per_example is not None:
        values, metric = per_example
        interval = stats.hierarchical_bootstrap(values, metric=metric, n_resamples=n_resamples, seed=0)
        estimate = float(np.mean(rows["primary"]))
        return estimate, float(interval.low), float(interval.high), "hierarchical bootstrap (seeds, then examples)"
    scores = [float(v) for v in rows["primary"]]
    interval = stats.stratified_bootstrap_iqm({task: scores}, n_resamples=n_resamples, seed=0)
    return float(interval.estimate), float(interval.low), float(interval.high), "IQM over seeds, bootstrap over seeds"


def _aggregate(cells: list[dict[str, Any]], tasks: list[dict[str, Any]], n_resamples: int) -> list[dict[str, Any]]:
    """Mean rank, Borda count and a min-max normalised score, among the models that share the same tasks
    (a text model is never ranked against a vision model), over complete cells only."""
    direction = {t["name"]: t["higher_is_better"] for t in tasks}
    by_model: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for cell in cells:
        by_model[cell["model"]][cell["task"]] = cell
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for model, model_cells in by_model.items():
        groups[tuple(sorted(model_cells))].append(model)
    rows = []
    for group_tasks, models in groups.items():
        complete = [m for m in models if all(by_model[m][t]["complete"] for t in group_tasks)]
        for model in models:
            rows.append({"model": model, "tasks": list(group_tasks), "group_size": len(models),
                         "complete": model in complete, "mean_rank": None, "rank_low": None, "rank_high": None,
                         "borda": None, "normalised_score": None})
        if len(complete) < 2:
            continue
        seeds = min(len(by_model[m][t]["per_seed"]) for m in complete for t in group_tasks)
        table = np.array([[by_model[m][t]["per_seed"][:seeds] for t in group_tasks] for m in complete])
        hib = [direction[t] for t in group_tasks]
        means = table.mean(axis=2)
        ranks = stats.mean_rank(means, higher_is_better=hib)
        borda = stats.borda(means, higher_is_better=hib)
        intervals = stats.rank_interval(table, higher_is_better=hib, n_resamples=n_resamples, seed=0)
        normalised = _normalised(means, hib)
        for i, model in enumerate(complete):
            row = next(r for r in rows if r["model"] == model)
            row.update(mean_rank=float(ranks[i]), rank_low=float(intervals[i].low), rank_high=float(intervals[i].high),
                       borda=float(borda[i]), normalised_score=normalised[i])
    return rows


def _normalised(means: np.ndarray, higher_is_better: list[bool]) -> list[float | None]:
    """Per task, 0 = the worst model of the group and 1 = the best; averaged over tasks."""
    scores = []
    for j, hib in enumerate(higher_is_better):
        column = means[:, j]
        worst, best = (column.min(), column.max()) if hib else (column.max(), column.min())
        scores.append(np.full(len(column), np.nan) if best == worst else stats.normalised_score(column, worst, best))
    table = np.array(scores).T
    return [None if np.isnan(row).all() else float(np.nanmean(row)) for row in table]


def _params(backbone: str) -> int | None:
    try:
        return BACKBONES.get(backbone).params
    except UsageError:
        return None


def _mean(column: pd.Series) -> float | None:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _board_from_runs(runs: pd.DataFrame, protocol: str | None) -> Leaderboard:
    """An ad-hoc leaderboard over every complete run of one protocol in a runs directory."""
    if runs.empty:
        raise UsageError("no complete runs to report on")
    protocols = sorted(set(runs["protocol"]))
    if protocol is None:
        if len(protocols) > 1:
            raise UsageError(f"the runs use several protocols ({', '.join(protocols)}); results of different "
                             "protocols never share a table: choose one with --protocol")
        protocol = protocols[0]
    runs = runs[runs["protocol"] == protocol]
    if runs.empty:
        raise UsageError(f"no complete runs with protocol '{protocol}' (found: {', '.join(protocols)})")
    tasks = tuple(dict.fromkeys(runs["task"]))
    models = []
    for (backbone, adapt), group in runs.groupby(["backbone", "adapt"], sort=False):
        models.append(ModelSelection(backbone, adapt, tuple(dict.fromkeys(group["task"]))))
    return Leaderboard(name=f"runs-{protocol}", description=f"all complete {protocol} runs", protocol=protocol,
                       seeds=tuple(sorted({int(s) for s in runs["seed"]})), tasks=tasks, models=tuple(models))
