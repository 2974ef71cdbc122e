"""Choosing a model from a report: the score-cost Pareto front, the best model under a budget, the best model per
task with the models not significantly different from it, and numbers formatted for people."""

from __future__ import annotations

import numpy as np
import pytest

from harness import stats
from harness.report import numbers
from harness.report.frontier import Point, best_under_budgets, pareto_front, task_frontier
from harness.report.leaderboard_report import table_groups


def test_pareto_front_of_known_points() -> None:
    points = [Point("cheap-weak", 0.60, 10), Point("mid", 0.75, 50), Point("dominated", 0.70, 80),
              Point("strong", 0.80, 200), Point("costly-equal", 0.80, 300), Point("twin", 0.75, 50)]
    front = pareto_front(points)
    assert set(front) == {"cheap-weak", "mid", "twin", "strong"}  # equal points never dominate each other
    assert front == ["cheap-weak", "mid", "twin", "strong"]  # cheapest first, ties by name


def test_pareto_front_directions() -> None:
    # lower score is better (an error rate) and higher cost is better (examples per second)
    points = [Point("a", 0.10, 100.0), Point("b", 0.20, 500.0), Point("c", 0.30, 200.0), Point("d", 0.05, 50.0)]
    assert pareto_front(points, higher_score_is_better=False, lower_cost_is_better=False) == ["b", "a", "d"]
    assert pareto_front([Point("only", 1.0, 1.0)]) == ["only"]


def test_task_frontier_leaves_out_costs_fewer_than_two_models_report() -> None:
    def cell(model: str, score: float, train_s: float, params: int | None) -> dict:
        return {"model": model, "complete": True, "estimate": score, "low": score - 0.1, "high": score + 0.1,
                "efficiency": {"train_s": train_s, "params": params, "eval_examples_per_s": None}}
    frontier = task_frontier("t/x", [cell("a", 0.9, 100, 5), cell("b", 0.8, 10, None),
                                     {"model": "c", "complete": False, "estimate": 0.99, "low": 0, "high": 1}], True)
    assert [c["cost"] for c in frontier["costs"]] == ["train_s"]
    assert frontier["costs"][0]["front"] == ["b", "a"] and [m["model"] for m in frontier["models"]] == ["a", "b"]
    assert frontier["plot"] == "frontier-t_x.svg"
    assert task_frontier("t", [cell("a", 0.9, 100, 5)], True) is None


def test_best_under_budgets() -> None:
    models = ["big", "small", "medium"]
    scores = np.array([[0.9, 0.95], [0.5, 0.4], [0.6, 0.9]])  # models x tasks
    rows = best_under_budgets(models, [300.0, 10.0, 50.0], scores, [True, True])
    assert [(r["budget_s"], r["models"], r["best"]) for r in rows] == [(10.0, 1, "small"), (50.0, 2, "medium"),
                                                                      (300.0, 3, "big")]
    # a lower-is-better task flips the ranks; a larger budget that buys nothing better is marked unchanged
    rows = best_under_budgets(models, [300.0, 10.0, 50.0], np.array([[0.9], [0.1], [0.5]]), [False])
    assert [r["best"] for r in rows] == ["small", "small", "small"] and [r["changed"] for r in rows] == [True, False,
                                                                                                        False]


def test_table_groups_join_tasks_that_share_models() -> None:
    tasks = [{"name": n, "modality": m} for n, m in
             [("ner", "text"), ("fm", "image"), ("sent", "text"), ("cartpole", "control"), ("pixels", "control")]]
    cells = [{"task": t, "model": m} for t, m in [("ner", "minilm"), ("ner", "mpnet"), ("fm", "lite0"),
                                                   ("sent", "mpnet"), ("cartpole", "mlp"), ("pixels", "lite0 frozen")]]
    groups = table_groups(tasks, cells)
    assert [(g["title"], g["tasks"], g["models"]) for g in groups] == [
        ("text: ner, sent", ["ner", "sent"], ["minilm", "mpnet"]), ("image: fm", ["fm"], ["lite0"]),
        ("control: cartpole", ["cartpole"], ["mlp"]), ("control: pixels", ["pixels"], ["lite0 frozen"])]


def test_paired_hierarchical_bootstrap_sees_a_consistent_gap_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((3, 400)) < 0.7
    better = [np.where(rng.random(400) < 0.15, 1.0, t.astype(float)) for t in truth]  # fixes 15% of errors
    result = stats.paired_hierarchical_bootstrap(better, [t.astype(float) for t in truth], "mean", n_resamples=500)
    assert result.difference > 0 and result.low > 0 and result.p_value < 0.01
    assert result.score_a == pytest.approx(np.mean([b.mean() for b in better]))
    same = stats.paired_hierarchical_bootstrap([t.astype(float) for t in truth], [t.astype(float) for t in truth])
    assert same.difference == 0 and same.p_value == 1.0
    # sufficient statistics (entity F1 counts), one seed: the paired test-set bootstrap
    counts = rng.integers(0, 3, size=(50, 3)).astype(float)
    one = stats.paired_hierarchical_bootstrap([counts], [counts], "f1", n_resamples=200)
    assert one.difference == 0
    with pytest.raises(ValueError, match="one entry per shared seed"):
        stats.paired_hierarchical_bootstrap([counts], [counts, counts], "f1")


def test_paired_seed_bootstrap() -> None:
    result = stats.paired_seed_bootstrap([500, 480, 490], [100, 120, 90], n_resamples=500)
    assert result.difference == pytest.approx(386.67, abs=0.01) and result.p_value < 0.01
    assert stats.paired_seed_bootstrap([1, 2, 3], [1, 2, 3]).p_value == 1.0


@pytest.mark.parametrize(("function", "value", "text"), [
    (numbers.score, 0.45678, "0.457"), (numbers.score, -85.93, "-85.9"), (numbers.score, 500.0, "500"),
    (numbers.score, 33740.2, "33,740"), (numbers.score, None, "–"), (numbers.score, float("nan"), "–"),
    (numbers.compact, 22713216, "22.7 M"), (numbers.compact, 999.7, "1 k"), (numbers.compact, 0.004, "0.004"),
    (numbers.seconds, 233.5733, "234 s"), (numbers.seconds, 12.34, "12.3 s"), (numbers.seconds, 5400, "1.5 h"),
    (numbers.seconds, 700, "11.7 min"), (numbers.rate, 33740.0, "33.7 k/s"), (numbers.rate, 112.4, "112 /s"),
    (numbers.megabytes, 3949.2, "3.95 GB"), (numbers.megabytes, 512.4, "512 MB"),
    (numbers.pvalue, 0.0001, "< 0.001"), (numbers.pvalue, None, numbers.NONE),
])
def test_numbers_for_people(function, value, text: str) -> None:
    assert function(value) == text
