"""Faithfulness numbers on a linear scorer, where every curve has a value known by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.explain.faithfulness import (
    curve_steps,
    example_faithfulness,
    rank_correlation,
    ranking,
    summarise,
)

WEIGHTS = np.array([1.0, 4.0, 2.0, 3.0])  # unit contributions of a linear model at x = 1


def linear_score(keep: np.ndarray) -> np.ndarray:
    return keep.astype(float) @ WEIGHTS


def test_curve_steps_cover_every_count_for_few_units_and_eleven_points_for_many() -> None:
    assert curve_steps(4).tolist() == [0, 1, 2, 3, 4]
    many = curve_steps(100)
    assert many.tolist() == list(range(0, 101, 10))
    with pytest.raises(ValueError):
        curve_steps(0)


def test_ranking_is_signed_and_stable() -> None:
    assert ranking([0.1, -5.0, 3.0, 3.0]).tolist() == [2, 3, 0, 1]


def test_ties_are_broken_by_the_seeded_generator_not_by_unit_order() -> None:
    orders = {tuple(ranking([3.0, 1.0, 1.0, 1.0, 1.0, 0.0], np.random.default_rng(s)).tolist()) for s in range(20)}
    assert all(o[0] == 0 and o[-1] == 5 and sorted(o[1:5]) == [1, 2, 3, 4] for o in orders)  # signed order kept
    assert len(orders) > 1  # the four tied units come in different orders
    assert ranking([1.0, 2.0], np.random.default_rng(0)).tolist() == [1, 0]
    flat = example_faithfulness(np.zeros(4), linear_score, np.random.default_rng(0), n_random=1)
    assert flat["constant_attribution"] and not example_faithfulness(
        WEIGHTS, linear_score, np.random.default_rng(0), n_random=1)["constant_attribution"]
    assert summarise([flat, flat])["constant_attributions"] == 2
    assert summarise([flat])["units"] == {"min": 4, "median": 4.0, "max": 4}


def test_exact_attribution_of_a_linear_model_gives_the_hand_computed_curves() -> None:
    out = example_faithfulness(WEIGHTS, linear_score, np.random.default_rng(0), n_random=2)
    # deletion removes 4, 3, 2, 1: scores 10, 6, 3, 1, 0 over fractions 0, .25, ..., 1
    assert out["deletion_curve"] == [10, 6, 3, 1, 0]
    assert out["deletion_auc"] == pytest.approx(0.25 * (10 / 2 + 6 + 3 + 1 + 0 / 2))
    assert out["insertion_curve"] == [0, 4, 7, 9, 10]
    assert out["insertion_auc"] == pytest.approx(0.25 * (0 / 2 + 4 + 7 + 9 + 10 / 2))
    # ERASER bins 1, 5, 10, 20 % -> the top unit; 50 % -> the top two (4 and 3)
    assert out["comprehensiveness"] == pytest.approx(np.mean([4, 4, 4, 4, 7]))
    assert out["sufficiency"] == pytest.approx(np.mean([6, 6, 6, 6, 3]))
    assert out["full_score"] == 10


def test_the_true_ranking_beats_every_other_ranking_of_a_linear_model() -> None:
    best = example_faithfulness(WEIGHTS, linear_score, np.random.default_rng(0), n_random=0)
    for order in itertools.permutations(range(4)):
        fake = np.empty(4)
        fake[list(order)] = [4, 3, 2, 1]  # a ranking putting unit order[0] first
        other = example_faithfulness(fake, linear_score, np.random.default_rng(0), n_random=0)
        assert best["deletion_auc"] <= other["deletion_auc"] + 1e-12
        assert best["insertion_auc"] >= other["insertion_auc"] - 1e-12
    assert best["deletion_auc_random"] is None


def test_random_rankings_are_seeded_and_worse_on_average() -> None:
    weights = np.linspace(10, 0, 30)

    def score(keep: np.ndarray) -> np.ndarray:
        return keep.astype(float) @ weights

    a = example_faithfulness(weights, score, np.random.default_rng(5), n_random=4)
    b = example_faithfulness(weights, score, np.random.default_rng(5), n_random=4)
    assert a == b
    assert a["deletion_auc"] < a["deletion_auc_random"]
    assert a["insertion_auc"] > a["insertion_auc_random"]


def test_score_function_is_called_once_with_every_variant() -> None:
    calls = []

    def score(keep: np.ndarray) -> np.ndarray:
        calls.append(keep.shape)
        return linear_score(keep)

    example_faithfulness(WEIGHTS, score, np.random.default_rng(0), n_random=3)
    assert len(calls) == 1
    # full input + (deletion + insertion) x (1 + 3 rankings) x 5 steps + 2 x 5 ERASER bins
    assert calls[0] == (1 + 2 * 4 * 5 + 2 * 5, 4)


def test_rank_correlation() -> None:
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 1], [1, 2, 3]) is None


def test_summary_intervals_and_paired_test() -> None:
    rng = np.random.default_rng(0)
    rows = [{"deletion_auc": 0.2 + 0.05 * rng.random(), "deletion_auc_random": 0.5 + 0.05 * rng.random(),
             "insertion_auc": 0.6, "insertion_auc_random": 0.6, "comprehensiveness": 0.3, "sufficiency": 0.1,
             "randomisation_spearman": None} for _ in range(20)]
    out = summarise(rows)
    assert out["n"] == 20
    entry = out["deletion_auc"]
    assert entry["low"] <= entry["mean"] <= entry["high"]
    assert out["deletion_vs_random"]["mean"] < 0 and out["deletion_vs_random"]["p_value"] < 1e-3
    assert out["insertion_vs_random"]["p_value"] == 1.0  # identical: no evidence either way
    assert "randomisation_spearman" not in out  # no values: not invented


def test_pooled_summaries_weight_runs_equally_and_cluster_entities_of_one_sentence() -> None:
    def row(run: str, ident: str, deletion: float, random: float) -> dict:
        return {"run": run, "id": ident, "deletion_auc": deletion, "deletion_auc_random": random}

    # run a: one sentence with three entities; run b: three sentences with one each
    rows = [row("a", "s1#0", 0.1, 0.5), row("a", "s1#1", 0.1, 0.5), row("a", "s1#2", 0.1, 0.5),
            row("b", "s1", 0.3, 0.4), row("b", "s2", 0.4, 0.4), row("b", "s3", 0.5, 0.4)]
    out = summarise(rows)
    assert out["runs"] == 2 and out["n"] == 6
    assert out["deletion_auc"]["mean"] == pytest.approx((0.1 + 0.4) / 2)  # mean of run means, not of items
    vs = out["deletion_vs_random"]
    assert vs["clusters"] == 4 and vs["mean"] == pytest.approx((-0.4 + 0.0) / 2)
    # the interval spans run-to-run variation: a quarter of resamples draw run a twice, so it reaches -0.4;
    # its top comes from run b's own sentence-to-sentence spread (-0.1, 0, 0.1)
    assert vs["low"] == pytest.approx(-0.4) and 0.0 < vs["high"] <= 0.1


def test_nested_bootstrap_reduces_to_the_item_bootstrap_for_one_run_of_singletons() -> None:
    from harness.stats import nested_bootstrap

    values = np.random.default_rng(1).normal(size=50)
    nested = nested_bootstrap(values, ["r"] * 50, list(range(50)), seed=3)
    assert nested.estimate == pytest.approx(values.mean())
    spread = values.std(ddof=1) / np.sqrt(50)
    assert nested.low == pytest.approx(values.mean() - 1.96 * spread, abs=0.35 * spread)
    assert nested.high == pytest.approx(values.mean() + 1.96 * spread, abs=0.35 * spread)
    with pytest.raises(ValueError, match="one entry per item"):
        nested_bootstrap(values, ["r"] * 49, list(range(50)))
