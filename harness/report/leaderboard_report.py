"""A leaderboard's numbers: per task x model the primary metric over seeds with an interval that
accounts for seeds and test examples, secondary metrics, efficiency, and a scale-free aggregate.

Rules that keep numbers honest: only runs of the board's protocol and of each task's current version
are used (others are listed as excluded, with the reason); a cell missing a seed is shown as
incomplete and left out of every aggregate; aggregates compare models only on the tasks they share.
"""

from __future__ import annotations

import json
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
from harness.report.best import mark_best
from harness.report.collect import example_statistics, model_label, runs_table
from harness.report.explanations import explanation_sections
from harness.report.frontier import best_under_budgets, task_frontier
from harness.store import RunStore
from harness.task import TASKS
from harness.tuning import search_space

EFFICIENCY = ["train_s", "train_examples_per_s", "eval_examples_per_s", "peak_mem_mb"]
# the efficiency columns that are costs come from what each run costs (collect.run_costs: cached frozen features
# charged), and are unknown for a cell when any of its runs' cost is
COST_COLUMNS = {"train_s": "train_cost_s", "eval_examples_per_s": "eval_cost_examples_per_s"}


def build_report(store: RunStore, board: Leaderboard | None = None, protocol: str | None = None,
                 n_resamples: int = 2000) -> dict[str, Any]:
    runs = runs_table(store)
    defined = board is not None
    board = board or _board_from_runs(runs, protocol)
    scored = score_cells(store, board, runs, n_resamples, strict_tuning=defined)
    tasks, cells, used = scored["tasks"], scored["cells"], scored["used"]
    return {
        "name": board.name,
        "description": board.description,
        "protocol": board.protocol,
        "seeds": list(board.seeds),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness_version": harness.__version__,
        "run_harness_versions": sorted({str(v) for v in used["harness"].dropna()}),
        # timings are comparable only from one machine: a report says where its runs ran
        "run_machines": sorted({str(v) for v in used["machine"].dropna()}),
        "feature_costs": feature_cost_notes(cells),
        "tasks": tasks,
        "models": list(dict.fromkeys(m.label for _, m in board.pairs())),
        "cells": cells,
        "groups": table_groups(tasks, cells),
        "aggregate": _aggregate(cells, tasks, n_resamples),
        "budgets": _budgets(cells, tasks),
        "frontiers": scored["frontiers"],
        "excluded": scored["excluded"],
        "missing": [f"{c['task']} / {c['model']}: seeds {', '.join(map(str, c['missing_seeds']))}"
                    for c in cells if c["missing_seeds"]],
        "explanations": explanation_sections(store, [(c["task"], c["model"], c["run_ids"]) for c in cells]),
    }


def score_cells(store: RunStore, board: Leaderboard, runs: pd.DataFrame, n_resamples: int = 2000,
                strict_tuning: bool = True) -> dict[str, Any]:
    """The board's cells from the stored runs (`runs_table`): each task x model's score over seeds with its
    interval, efficiency, the best model per task and those not significantly different from it, and each task's
    score-cost frontier. Runs of another protocol, task version or seed, or tuned when the board is not (and the
    other way round), are left out and listed (`excluded`); `strict_tuning` also leaves out runs tuned over
    another search space than the board's (off for boards made up from the runs themselves)."""
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
        if (problem := _tuning_problem(board, run, strict_tuning)) is not None:
            reasons.append(problem)
        if reasons:
            excluded.append({"run_id": run["run_id"], "reason": "; ".join(reasons)})
    bad = {e["run_id"] for e in excluded}
    used = in_board[~in_board["run_id"].isin(bad)]
    cells = [_cell(store, task, m.label, m.name, board, used, n_resamples) for task, m in pairs]
    for cell in cells:
        cell["tuning"] = _tuning_of(store, cell, used)
    frontiers = []
    for task in tasks:
        own = [c for c in cells if c["task"] == task["name"]]
        mark_best(store, own, task["name"], task["higher_is_better"], n_resamples=n_resamples)
        frontier = task_frontier(task["name"], own, task["higher_is_better"])
        if frontier is not None:
            frontiers.append(frontier)
    return {"tasks": tasks, "cells": cells, "excluded": excluded, "used": used, "frontiers": frontiers}


def _tuning_of(store: RunStore, cell: dict[str, Any], used: pd.DataFrame) -> dict[str, Any] | None:
    """A tuned cell's tuning: the grid, the choice and each point's mean dev score (from its first run's record)."""
    tuned = used[(used["task"] == cell["task"]) & (used["model"] == cell["model"])]["tuning"].dropna()
    if not len(tuned):
        return None
    block = json.loads(tuned.iloc[0])
    record = store.read_result(cell["run_ids"][0]) if cell["run_ids"] else None
    recorded = (record or {}).get("tuning") or {}
    return block | {k: recorded[k] for k in ("selected_by", "trials") if k in recorded}


def _tuning_problem(board: Leaderboard, run: pd.Series, strict: bool) -> str | None:
    """Why a run's tuning does not fit the board (tuned boards take runs tuned over their own search space and
    tuning seeds; untuned boards take untuned runs), or None."""
    tuning = run.get("tuning")
    tuned = isinstance(tuning, str)
    if not board.tune:
        return "its settings were tuned; this leaderboard is not tuned" if tuned else None
    if not tuned:
        return "its settings were not tuned; this leaderboard tunes each model on dev"
    if not strict:
        return None
    model = next((m for task, m in board.pairs() if task == run["task"] and m.label == run["model"]), None)
    if model is None:
        return None
    recorded = json.loads(tuning)
    try:
        space = {k: list(v) for k, v in search_space(board, run["task"], model).items()}
    except UsageError as exc:
        return str(exc)
    if recorded.get("space") != space or recorded.get("seeds") != list(board.trial_seeds):
        return "tuned over another search space or other tuning seeds than this leaderboard's"
    return None


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
                       "efficiency": {}, "per_seed": [], "feature_cost": None}
    estimate, low, high, method = _interval(store, task, rows, n_resamples)
    metric_columns = [c for c in rows.columns if c.startswith("metric:") and rows[c].notna().all()]
    return cell | {
        "estimate": estimate, "low": low, "high": high, "method": method,
        "per_seed": [float(v) for v in rows["primary"]],
        "secondary": {c.removeprefix("metric:"): float(rows[c].mean()) for c in metric_columns},
        "efficiency": {"params": _params(backbone), **{k: _mean(rows[k]) for k in EFFICIENCY}}
        | {k: _mean_of_all(rows[column]) for k, column in COST_COLUMNS.items() if column in rows},
        "feature_cost": _feature_cost(rows),
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


def table_groups(tasks: list[dict[str, Any]], cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks split into tables whose models overlap: two tasks share a table when some model runs on both
    (so a text model's row never spans image columns). Tables in the board's task order, models in its order."""
    models_of = {t["name"]: list(dict.fromkeys(c["model"] for c in cells if c["task"] == t["name"])) for t in tasks}
    groups: list[dict[str, list[str]]] = []
    for task in tasks:
        joined = [g for g in groups if set(g["models"]) & set(models_of[task["name"]])]
        merged = {"tasks": [t for g in joined for t in g["tasks"]] + [task["name"]],
                  "models": [m for g in joined for m in g["models"]] + models_of[task["name"]]}
        groups = [g for g in groups if g not in joined] + [merged]
    order = [t["name"] for t in tasks]
    modality = {t["name"]: t["modality"] for t in tasks}
    out = []
    for group in sorted(groups, key=lambda g: min(order.index(t) for t in g["tasks"])):
        names = sorted(group["tasks"], key=order.index)
        models = [m for m in dict.fromkeys(c["model"] for c in cells) if m in group["models"]]
        title = ", ".join(dict.fromkeys(modality[t] for t in names)) + ": " + ", ".join(names)
        out.append({"title": title, "tasks": names, "models": models})
    return out


def _models_by_tasks(cells: list[dict[str, Any]]) -> tuple[dict[str, dict[str, dict[str, Any]]],
                                                           dict[tuple[str, ...], list[str]]]:
    """(model -> task -> cell, task set -> the models evaluated on exactly those tasks)."""
    by_model: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for cell in cells:
        by_model[cell["model"]][cell["task"]] = cell
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for model, model_cells in by_model.items():
        groups[tuple(sorted(model_cells))].append(model)
    return by_model, groups


def _budgets(cells: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group of models on the same tasks (as the aggregate groups them), the best model under each
    training-time budget (total training seconds over the group's tasks, mean over seeds)."""
    direction = {t["name"]: t["higher_is_better"] for t in tasks}
    by_model, groups = _models_by_tasks(cells)
    out = []
    for group_tasks, all_models in groups.items():
        models = [m for m in all_models if all(by_model[m][t]["complete"] and by_model[m][t]["efficiency"].get(
            "train_s") is not None for t in group_tasks)]
        if len(models) < 2:
            continue
        costs = [sum(by_model[m][t]["efficiency"]["train_s"] for t in group_tasks) for m in models]
        scores = np.array([[by_model[m][t]["estimate"] for t in group_tasks] for m in models])
        out.append({"tasks": list(group_tasks), "rows": best_under_budgets(
            models, costs, scores, [direction[t] for t in group_tasks])})
    return out


def _aggregate(cells: list[dict[str, Any]], tasks: list[dict[str, Any]], n_resamples: int) -> list[dict[str, Any]]:
    """Mean rank, Borda count and a min-max normalised score, among the models that share the same tasks
    (a text model is never ranked against a vision model), over complete cells only."""
    direction = {t["name"]: t["higher_is_better"] for t in tasks}
    by_model, groups = _models_by_tasks(cells)
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


def feature_cost_notes(cells: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which cells train heads on cached frozen features, by whether their costs include computing them."""
    notes: dict[str, list[str]] = {"charged": [], "unknown": []}
    for c in cells:
        if c.get("feature_cost") in notes:
            notes[c["feature_cost"]].append(f"{c['task']} / {c['model']}")
    return notes


def _mean_of_all(column: pd.Series) -> float | None:
    """The mean, or None when any value is unknown (a cost averaged over some seeds would understate it)."""
    values = pd.to_numeric(column, errors="coerce")
    return float(values.mean()) if len(values) and values.notna().all() else None


def _feature_cost(rows: pd.DataFrame) -> str | None:
    """A cell's cached-feature cost: None (no cached features), "charged", or "unknown" when any run's is."""
    kinds = {k for k in rows.get("feature_cost", pd.Series(dtype=object)).dropna()}
    return "unknown" if "unknown" in kinds else ("charged" if kinds else None)


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
    tuned = set(runs["tuning"].notna())
    if len(tuned) > 1:
        raise UsageError(f"the {protocol} runs mix tuned and untuned settings, which never share a table: report "
                         "a leaderboard (harness report --leaderboard NAME)")
    tasks = tuple(dict.fromkeys(runs["task"]))
    models = []
    for (backbone, adapt), group in runs.groupby(["backbone", "adapt"], sort=False):
        models.append(ModelSelection(backbone, adapt, tuple(dict.fromkeys(group["task"]))))
    return Leaderboard(name=f"runs-{protocol}", description=f"all complete {protocol} runs", protocol=protocol,
                       seeds=tuple(sorted({int(s) for s in runs["seed"]})), tasks=tasks, models=tuple(models),
                       tune=tuned == {True})
