"""Paired comparisons of model selections on the same test examples, with multiple-testing correction.

For each task and each seed both models ran with, the two runs are paired example by example:
McNemar's exact test when the primary metric is accuracy-like (a mean of per-example correctness),
a paired bootstrap of the metric difference otherwise (e.g. entity F1 from per-sentence counts).
The difference always comes with a paired-bootstrap interval. p-values are Holm-corrected over every
comparison in the report; win/tie/loss counts use the corrected values. Control tasks have no shared
examples (episodes differ), so runs are paired by seed and compared with a bootstrap over seeds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

import harness
from harness import stats
from harness.errors import UsageError
from harness.leaderboard import Leaderboard, ModelSelection
from harness.report.collect import example_statistics, model_label, runs_table
from harness.report.explanations import explanation_sections
from harness.report.leaderboard_report import feature_cost_notes, score_cells
from harness.store import RunStore
from harness.task import TASKS


def parse_models(text: str) -> list[tuple[str, str | None]]:
    """"minilm,minilm:frozen" -> [("minilm", None), ("minilm", "frozen")]; None = any adaptation mode."""
    models = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        backbone, _, adapt = part.partition(":")
        if adapt == "partial":  # "name:partial:2"
            backbone, adapt = part.split(":", 1)
        models.append((backbone, adapt or None))
    if len(models) < 2:
        raise UsageError("--backbones needs at least two models, e.g. --backbones minilm:frozen,minilm:full")
    return models


def build_comparison(store: RunStore, models: list[tuple[str, str | None]], tasks: list[str] | None = None,
                     protocol: str | None = None, alpha: float = 0.05, n_resamples: int = 2000) -> dict[str, Any]:
    runs = runs_table(store)
    if runs.empty:
        raise UsageError(f"no complete runs in {store.root}")
    protocol = _one_protocol(runs, protocol)
    runs = runs[runs["protocol"] == protocol]
    labels = [_resolve_label(runs, backbone, adapt) for backbone, adapt in models]
    selections = [_selection(label, runs) for label in labels]
    runs = runs.assign(model=[model_label(b, a) for b, a in zip(runs["backbone"], runs["adapt"], strict=True)])
    task_names = tasks or sorted(set(runs[runs["model"].isin(labels)]["task"]))
    rows, notes = _paired_rows(store, runs, task_names, labels, protocol, n_resamples)
    if not rows:
        raise UsageError("nothing to compare: " + "; ".join(notes or ["no runs of these models"]))
    corrected = stats.holm([r["p_value"] for r in rows])
    for row, p in zip(rows, corrected, strict=True):
        row["p_holm"] = p
        significant = p < alpha and row["difference"] != 0
        row["outcome"] = ("win" if row["difference"] > 0 else "loss") if significant else "tie"
    # the same runs as a leaderboard of these models: each one's score with its interval, and the cost frontiers
    compared = runs[runs["model"].isin(labels)]
    board = Leaderboard(name="comparison", description="", protocol=protocol, tasks=tuple(task_names),
                        seeds=tuple(sorted({int(s) for s in compared["seed"]})),
                        models=tuple(ModelSelection(b, a, tuple(task_names)) for b, a in selections),
                        tune=bool(compared["tuning"].notna().any()))
    scored = score_cells(store, board, runs, n_resamples, strict_tuning=False)
    unknown = feature_cost_notes(scored["cells"])["unknown"]
    if unknown:  # the fronts leave these out of the training-time and evaluation-rate axes
        notes.append(f"cost unknown for {', '.join(unknown)}: cached frozen features computed before harness "
                     "recorded their cost (rerun with --force and an empty feature cache)")
    return {
        "protocol": protocol, "models": labels, "tasks": task_names, "alpha": alpha,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "harness_version": harness.__version__,
        "rows": rows, "summary": _summary(rows, labels), "notes": notes, "frontiers": scored["frontiers"],
        "explanations": explanation_sections(store, [(c["task"], c["model"], c["run_ids"]) for c in scored["cells"]]),
    }


def _one_protocol(runs: Any, protocol: str | None) -> str:
    if protocol is not None:
        return protocol
    protocols = sorted(set(runs["protocol"]))
    if len(protocols) > 1:
        raise UsageError(f"the runs use several protocols ({', '.join(protocols)}): choose one with --protocol")
    return protocols[0]


def _paired_rows(store: RunStore, runs: Any, task_names: list[str], labels: list[str], protocol: str,
                 n_resamples: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Every pair of models on every task, per shared seed; a note where a pair shares no seed."""
    rows, notes = [], []
    for task in task_names:
        version = _current_version(task)
        task_runs = runs[runs["task"] == task]
        if version:  # results of an older task version are never paired with current ones
            task_runs = task_runs[task_runs["task_version"] == version]
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                found = _compare_pair(store, task, task_runs, a, b, n_resamples)
                if not found:
                    notes.append(f"{task}: no seed where both {a} and {b} have a complete {protocol} run")
                rows += found
    return rows, notes


def _resolve_label(runs: Any, backbone: str, adapt: str | None) -> str:
    subset = runs[runs["backbone"] == backbone]
    if adapt is not None:
        subset = subset[subset["adapt"] == adapt]
    modes = sorted(set(subset["adapt"]))
    if not modes:
        raise UsageError(f"no complete runs of backbone '{backbone}'" + (f" with adapt {adapt}" if adapt else "")
                         + "; run them first (harness run --task T --backbone ...)")
    if len(modes) > 1:
        raise UsageError(f"backbone '{backbone}' has runs with several adaptation modes ({', '.join(modes)}): "
                         f"name one, e.g. {backbone}:{modes[0]}")
    return model_label(backbone, modes[0])


def _selection(label: str, runs: Any) -> tuple[str, str]:
    """The (backbone, adapt) of a model label, as recorded in its runs."""
    row = runs[[model_label(b, a) == label for b, a in zip(runs["backbone"], runs["adapt"], strict=True)]].iloc[0]
    return str(row["backbone"]), str(row["adapt"])


def _current_version(task: str) -> str | None:
    try:
        return TASKS.get(task).spec.version
    except UsageError:
        return None


def _compare_pair(store: RunStore, task: str, runs: Any, a: str, b: str, n_resamples: int) -> list[dict[str, Any]]:
    runs_a = runs[runs["model"] == a].drop_duplicates("seed", keep="last").set_index("seed")
    runs_b = runs[runs["model"] == b].drop_duplicates("seed", keep="last").set_index("seed")
    seeds = sorted(set(runs_a.index) & set(runs_b.index))
    if not seeds:
        return []
    metric_name = runs_a.iloc[0]["primary_metric"]
    higher = bool(runs_a.iloc[0]["higher_is_better"])
    rows = []
    for seed in seeds:
        run_a, run_b = runs_a.loc[seed], runs_b.loc[seed]
        stats_ab = example_statistics(store, [run_a["run_id"], run_b["run_id"]], task)
        base = {"task": task, "seed": int(seed), "a": a, "b": b, "metric": metric_name, "higher_is_better": higher,
                "score_a": float(run_a["primary"]), "score_b": float(run_b["primary"]),
                "run_a": run_a["run_id"], "run_b": run_b["run_id"]}
        if stats_ab is None:
            continue
        (xa, xb), metric = stats_ab
        paired = stats.paired_bootstrap(xa, xb, metric_from_sums=metric, n_resamples=n_resamples, seed=seed)
        row = base | {"difference": paired.difference, "low": paired.low, "high": paired.high,
                      "p_value": paired.p_value, "test": "paired bootstrap", "n_examples": len(xa)}
        if metric == "mean" and set(np.unique(np.concatenate([xa, xb]))) <= {0.0, 1.0}:
            exact = stats.mcnemar(xa.astype(bool), xb.astype(bool))
            row |= {"p_value": exact.p_value, "test": f"McNemar exact (b={exact.b}, c={exact.c})"}
        if not higher:  # report differences so that positive always means A is better
            row |= {"difference": -row["difference"], "low": -row["high"], "high": -row["low"]}
        rows.append(row)
    if not rows:  # control tasks: pair runs by seed, bootstrap the per-seed differences
        diffs = np.array([float(runs_a.loc[s]["primary"]) - float(runs_b.loc[s]["primary"]) for s in seeds])
        diffs = diffs if higher else -diffs
        interval = stats.bootstrap_ci(diffs, statistic="mean", n_resamples=n_resamples, seed=0)
        p = 1.0 if np.allclose(diffs, 0) else float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
        rows.append({"task": task, "seed": "all", "a": a, "b": b, "metric": metric_name, "higher_is_better": higher,
                     "score_a": float(runs_a["primary"].mean()), "score_b": float(runs_b["primary"].mean()),
                     "difference": float(diffs.mean()), "low": interval.low, "high": interval.high, "p_value": p,
                     "test": "bootstrap over seeds (sign test p)", "n_examples": len(seeds), "run_a": "", "run_b": ""})
    return rows


def _summary(rows: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            pair = [r for r in rows if r["a"] == a and r["b"] == b]
            out.append({"a": a, "b": b, "win": sum(r["outcome"] == "win" for r in pair),
                        "tie": sum(r["outcome"] == "tie" for r in pair),
                        "loss": sum(r["outcome"] == "loss" for r in pair)})
    return out
