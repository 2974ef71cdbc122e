"""The best model of each task, and every model that is not significantly worse than it.

Decided by paired tests, never by overlapping intervals: the best model (highest mean, or lowest for a
lower-is-better metric) is compared with each other complete model on the seeds both ran, with a paired
hierarchical bootstrap (seed pairs, then shared test examples) where the metric decomposes over examples and a
paired bootstrap over seeds otherwise (RL). p-values are Holm-corrected over the comparisons of one task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import stats
from harness.report.collect import example_statistics
from harness.store import RunStore


def mark_best(store: RunStore, cells: Sequence[dict[str, Any]], task: str, higher_is_better: bool,
              alpha: float = 0.05, n_resamples: int = 2000) -> None:
    """Set each of one task's complete cells' `mark` ("best", "tied": not significantly different from the best,
    or None) and `vs_best` (the paired test against the best). Nothing is marked with fewer than two models."""
    for cell in cells:
        cell["mark"], cell["vs_best"] = None, None
    complete = [c for c in cells if c.get("complete") and c.get("estimate") is not None]
    if len(complete) < 2:
        return
    sign = 1.0 if higher_is_better else -1.0
    best = max(complete, key=lambda c: sign * c["estimate"])
    best["mark"] = "best"
    others = [c for c in complete if c is not best]
    tests = [_paired_test(store, task, best, other, higher_is_better, n_resamples) for other in others]
    usable = [(other, test) for other, test in zip(others, tests, strict=True) if test is not None]
    corrected = stats.holm([test["p_value"] for _, test in usable])
    for (other, test), p in zip(usable, corrected, strict=True):
        other["vs_best"] = test | {"p_holm": p, "best": best["model"], "alpha": alpha}
        other["mark"] = "tied" if p >= alpha else None


def _paired_test(store: RunStore, task: str, best: dict[str, Any], other: dict[str, Any], higher_is_better: bool,
                 n_resamples: int) -> dict[str, Any] | None:
    """The best model minus `other` (positive: the best is better) on their shared seeds; None without any."""
    seeds = [s for s in best["seeds"] if s in other["seeds"]]
    if not seeds:
        return None
    ids_best = [best["run_ids"][best["seeds"].index(s)] for s in seeds]
    ids_other = [other["run_ids"][other["seeds"].index(s)] for s in seeds]
    per_example = example_statistics(store, ids_best + ids_other, task)
    if per_example is not None:
        values, metric = per_example
        result = stats.paired_hierarchical_bootstrap(values[:len(seeds)], values[len(seeds):], metric,
                                                     n_resamples=n_resamples, seed=0)
        test = "paired bootstrap over seeds and test examples"
    else:
        scores_best = [best["per_seed"][best["seeds"].index(s)] for s in seeds]
        scores_other = [other["per_seed"][other["seeds"].index(s)] for s in seeds]
        result = stats.paired_seed_bootstrap(scores_best, scores_other, n_resamples=n_resamples, seed=0)
        test = "paired bootstrap over seeds"
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * result.low, sign * result.high))
    return {"difference": sign * result.difference, "low": low, "high": high, "p_value": result.p_value,
            "seeds": seeds, "test": test}
