"""Score against cost: the Pareto front of the models of one task, and the best model under a budget.

A model is on the front when no other model is at least as good on both score and cost and strictly better on
one. Costs: training seconds and backbone parameters (lower is better), evaluation examples per second (higher
is better). Models with equal score and cost are both on the front (neither dominates the other).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import stats

# (key in a cell's efficiency, words for people, lower cost is better)
COSTS: tuple[tuple[str, str, bool], ...] = (
    ("train_s", "training seconds", True),
    ("params", "backbone parameters", True),
    ("eval_examples_per_s", "evaluation examples per second", False),
)


@dataclass(frozen=True)
class Point:
    """One model of one task: its score and one cost."""

    model: str
    score: float
    cost: float


def pareto_front(points: Sequence[Point], higher_score_is_better: bool = True,
                 lower_cost_is_better: bool = True) -> list[str]:
    """The models on the score-cost Pareto front, cheapest first."""
    sign_score = 1.0 if higher_score_is_better else -1.0
    sign_cost = -1.0 if lower_cost_is_better else 1.0  # turn both into "larger is better"
    good = [(sign_score * p.score, sign_cost * p.cost) for p in points]
    front = []
    for i, (score, cost) in enumerate(good):
        dominated = any(s >= score and c >= cost and (s > score or c > cost)
                        for j, (s, c) in enumerate(good) if j != i)
        if not dominated:
            front.append(i)
    front.sort(key=lambda i: (-good[i][1], points[i].model))
    return [points[i].model for i in front]


def task_frontier(task: str, cells: Sequence[dict[str, Any]], higher_is_better: bool) -> dict[str, Any] | None:
    """One task's complete cells against each cost: the models (score with interval, every cost they report) and
    per cost the front's models. None with fewer than two complete models; a cost fewer than two report is left out."""
    scored = [c for c in cells if c.get("complete") and c.get("estimate") is not None]
    if len(scored) < 2:
        return None
    models = [{"model": c["model"], "score": c["estimate"], "low": c["low"], "high": c["high"],
               "costs": {key: (c.get("efficiency") or {}).get(key) for key, _, _ in COSTS}} for c in scored]
    costs = []
    for key, words, lower_better in COSTS:
        points = [Point(m["model"], m["score"], float(m["costs"][key]))
                  for m in models if m["costs"][key] is not None]
        if len(points) >= 2:
            costs.append({"cost": key, "cost_words": words, "lower_cost_is_better": lower_better,
                          "front": pareto_front(points, higher_is_better, lower_better)})
    return {"task": task, "higher_is_better": higher_is_better, "models": models, "costs": costs,
            "plot": "frontier-" + re.sub(r"[^A-Za-z0-9_.-]", "_", task) + ".svg"}


def best_under_budgets(models: Sequence[str], costs: Sequence[float], scores: np.ndarray,
                       higher_is_better: Sequence[bool]) -> list[dict[str, Any]]:
    """For a group of models on the same tasks (`scores`: models x tasks, means over seeds; `costs`: each model's
    total training seconds over those tasks), one row per budget level (each model's own cost, ascending): the
    models within the budget and the best of them by mean rank among themselves (ties: the cheaper one).
    `changed` is False where a larger budget buys nothing better."""
    order = sorted(range(len(models)), key=lambda i: (costs[i], models[i]))
    rows, best_before = [], None
    for budget in sorted(set(costs)):
        affordable = [j for j in order if costs[j] <= budget]
        ranks = stats.mean_rank(scores[affordable], higher_is_better=list(higher_is_better))
        best = affordable[int(np.argmin(ranks))]  # argmin takes the first: the cheapest among equals
        rows.append({"budget_s": float(budget), "models": len(affordable), "best": models[best],
                     "best_cost_s": float(costs[best]), "changed": best != best_before})
        best_before = best
    return rows
