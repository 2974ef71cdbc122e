"""harness.stats against hand-computed cases and the properties the reports rely on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness import stats


def _bernoulli(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


# ------------------------------------------------------------------------------------------------------------ IQM


def test_iqm_by_hand() -> None:
    assert stats.iqm(range(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)  # an outlier run does not move it


def test_iqm_rejects_nan_and_empty() -> None:
    with pytest.raises(ValueError):
        stats.iqm([1.0, float("nan")])
    with pytest.raises(ValueError):
        stats.iqm([])


# ---------------------------------------------------------------------------------------------------- bootstrap_ci


@pytest.mark.parametrize("statistic", ["mean", "iqm", "median"])
def test_bootstrap_constant_and_single_value_are_degenerate(statistic: str) -> None:
    for values in ([0.3] * 12, [7.0]):
        ci = stats.bootstrap_ci(values, statistic=statistic, seed=1)
        assert ci.low == ci.estimate == ci.high
        assert ci.width == 0


def test_bootstrap_interval_contains_estimate_and_shrinks_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small = stats.bootstrap_ci(rng.normal(size=20), seed=0)
    large = stats.bootstrap_ci(rng.normal(size=2000), seed=0)
    assert small.low < small.estimate < small.high
    assert large.width < small.width / 5


def test_bootstrap_iqm_and_callables_agree() -> None:
    values = np.random.default_rng(1).normal(size=50)
    named = stats.bootstrap_ci(values, statistic="iqm", seed=3)
    assert named.estimate == pytest.approx(stats.iqm(values))
    with_axis = stats.bootstrap_ci(values, statistic=lambda x, axis=-1: np.mean(x, axis=axis), seed=3)
    without_axis = stats.bootstrap_ci(values, statistic=lambda x: float(np.mean(x)), n_resamples=300, seed=3)
    assert with_axis.to_dict() == stats.bootstrap_ci(values, statistic="mean", seed=3).to_dict()
    assert without_axis.estimate == pytest.approx(with_axis.estimate)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(2).normal(size=30)
    assert stats.bootstrap_ci(values, seed=5) == stats.bootstrap_ci(values, seed=5)
    assert stats.bootstrap_ci(values, seed=5) != stats.bootstrap_ci(values, seed=6)
    from_generator = stats.bootstrap_ci(values, seed=np.random.default_rng(5))
    assert from_generator == stats.bootstrap_ci(values, seed=5)


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_ci([1, 2, 3], level=1.5)
    with pytest.raises(ValueError):
        stats.bootstrap_ci([1, 2, 3], statistic="mode")
    with pytest.raises(ValueError):
        stats.bootstrap_ci([[1, 2], [3, 4]])


# --------------------------------------------------------------------------------------------- stratified bootstrap


def test_stratified_one_task_is_an_iqm_bootstrap_over_seeds() -> None:
    values = np.random.default_rng(3).normal(100, 20, size=10)
    strat = stats.stratified_bootstrap_iqm({"cartpole": values}, seed=0, n_resamples=4000)
    plain = stats.bootstrap_ci(values, statistic="iqm", seed=0, n_resamples=4000)
    assert strat.estimate == stats.iqm(values)
    assert strat.low == pytest.approx(plain.low, abs=0.05 * plain.width)
    assert strat.high == pytest.approx(plain.high, abs=0.05 * plain.width)


def test_stratified_mapping_and_runs_by_tasks_array_agree() -> None:
    table = np.random.default_rng(4).random((5, 3))  # runs x tasks
    as_array = stats.stratified_bootstrap_iqm(table, seed=9)
    as_mapping = stats.stratified_bootstrap_iqm({f"t{j}": table[:, j] for j in range(3)}, seed=9)
    assert as_array == as_mapping
    assert as_array.estimate == pytest.approx(stats.iqm(table.ravel()))
    assert as_array.low <= as_array.estimate <= as_array.high


def test_stratified_resamples_within_tasks() -> None:
    # Tasks with different run counts; a task whose runs agree contributes no variance.
    scores = {"a": [0.5] * 4, "b": [0.1, 0.9, 0.4], "c": [0.7]}
    ci = stats.stratified_bootstrap(scores, statistic="mean", seed=0)
    assert ci.estimate == pytest.approx(np.mean([0.5] * 4 + [0.1, 0.9, 0.4, 0.7]))
    # Only task b varies: its mean ranges over [0.1, 0.9], diluted by the 5 fixed runs out of 8.
    assert (0.5 * 4 + 0.1 * 3 + 0.7) / 8 <= ci.low < ci.high <= (0.5 * 4 + 0.9 * 3 + 0.7) / 8
    assert stats.stratified_bootstrap_iqm({"a": [2.0] * 6}, seed=0).width == 0


# ------------------------------------------------------------------------------------------- hierarchical bootstrap


def test_hierarchical_one_seed_is_an_example_bootstrap() -> None:
    correct = _bernoulli(0.7, 400, seed=0)
    hier = stats.hierarchical_bootstrap([correct], seed=0, n_resamples=4000)
    plain = stats.bootstrap_ci(correct, statistic="mean", seed=0, n_resamples=4000)
    assert hier.estimate == pytest.approx(correct.mean())
    assert hier.low == pytest.approx(plain.low, abs=0.01)
    assert hier.high == pytest.approx(plain.high, abs=0.01)
    assert stats.example_bootstrap(correct, seed=0, n_resamples=4000) == hier


def test_hierarchical_identical_seeds_add_no_width() -> None:
    correct = _bernoulli(0.6, 300, seed=1)
    one = stats.hierarchical_bootstrap([correct], seed=2)
    three = stats.hierarchical_bootstrap([correct, correct, correct], seed=2)
    assert three.estimate == pytest.approx(one.estimate)
    assert three.low == pytest.approx(one.low, abs=1e-12)
    assert three.high == pytest.approx(one.high, abs=1e-12)


def test_hierarchical_seed_variance_widens_the_interval() -> None:
    base = _bernoulli(0.6, 300, seed=1)
    identical = stats.hierarchical_bootstrap([base] * 4, seed=0)
    different = stats.hierarchical_bootstrap([_bernoulli(p, 300, seed=s) for s, p in enumerate([0.3, 0.5, 0.7, 0.9])],
                                             seed=0)
    assert different.width > 2 * identical.width


def test_hierarchical_f1_from_sufficient_statistics() -> None:
    rng = np.random.default_rng(5)
    per_seed = []
    for _ in range(3):
        gold = rng.integers(0, 4, size=200)
        pred = rng.integers(0, 4, size=200)
        tp = np.minimum(gold, pred) * (rng.random(200) < 0.8)
        per_seed.append(np.column_stack([tp, pred, gold]))  # (tp, n_pred, n_gold) per sentence
    f1s = [stats.f1_from_sums(s.sum(axis=0)) for s in per_seed]
    ci = stats.hierarchical_bootstrap(per_seed, stats.f1_from_sums, seed=0)
    assert ci.estimate == pytest.approx(np.mean(f1s))
    assert ci.low < ci.estimate < ci.high
    assert stats.hierarchical_bootstrap(per_seed, "f1", seed=0) == ci


def test_hierarchical_rejects_mismatched_seeds() -> None:
    with pytest.raises(ValueError):
        stats.hierarchical_bootstrap([np.ones(5), np.ones(6)])
    with pytest.raises(ValueError):
        stats.hierarchical_bootstrap([])


# ----------------------------------------------------------------------------------------------- metrics from sums


def test_f1_from_sums_equals_direct_f1() -> None:
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 5, size=100)
    pred = rng.integers(0, 5, size=100)
    tp = np.minimum(gold, pred) // 2
    precision, recall = tp.sum() / pred.sum(), tp.sum() / gold.sum()
    direct = 2 * precision * recall / (precision + recall)
    assert stats.f1_from_sums(np.column_stack([tp, pred, gold]).sum(axis=0)) == pytest.approx(direct)
    assert stats.f1_from_sums(np.zeros(3)) == 0.0  # nothing predicted, nothing gold
    assert stats.f1_from_sums(np.array([[2, 4, 4], [0, 1, 0]])).tolist() == [0.5, 0.0]


def test_scalar_metrics_must_be_wrapped() -> None:
    rows = np.column_stack([_bernoulli(0.5, 50, 0), np.ones(50)])

    def scalar(s: np.ndarray) -> float:
        return float(s[0] / s[1])

    with pytest.raises(TypeError, match="vectorize_metric"):
        stats.example_bootstrap(rows, scalar, n_resamples=50)
    wrapped = stats.example_bootstrap(rows, stats.vectorize_metric(scalar), n_resamples=50, seed=1)
    assert wrapped == stats.example_bootstrap(rows, stats.ratio_from_sums, n_resamples=50, seed=1)
    assert wrapped == stats.example_bootstrap(rows[:, 0], "mean", n_resamples=50, seed=1)


# ------------------------------------------------------------------------------------------------ paired bootstrap


def test_paired_identical_systems() -> None:
    a = _bernoulli(0.7, 100, seed=0)
    result = stats.paired_bootstrap(a, a.copy(), seed=0)
    assert (result.difference, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_all_right_against_all_wrong() -> None:
    result = stats.paired_bootstrap(np.ones(10), np.zeros(10), n_resamples=999, seed=0)
    assert result.difference == 1.0 and result.low == result.high == 1.0
    assert result.p_value == pytest.approx(2 / 1000)  # no resample on the other side of zero: 2 (0 + 1) / (999 + 1)
    assert (result.score_a, result.score_b) == (1.0, 0.0)


def test_paired_is_antisymmetric_and_consistent_with_its_interval() -> None:
    a, b = _bernoulli(0.75, 300, seed=1), _bernoulli(0.6, 300, seed=2)
    ab, ba = stats.paired_bootstrap(a, b, seed=4), stats.paired_bootstrap(b, a, seed=4)
    assert ab.difference == pytest.approx(a.mean() - b.mean()) and ba.difference == pytest.approx(-ab.difference)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low))
    assert ab.p_value == ba.p_value
    assert ab.low > 0 and ab.p_value < 0.05
    close = stats.paired_bootstrap(a, np.roll(a, 1), seed=4)
    assert close.low < 0 < close.high and close.p_value > 0.05


def test_paired_f1_on_sufficient_statistics() -> None:
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 3, size=150)
    pred_a, pred_b = gold.copy(), rng.integers(0, 3, size=150)
    a = np.column_stack([gold, pred_a, gold])  # perfect system
    b = np.column_stack([np.minimum(gold, pred_b), pred_b, gold])
    result = stats.paired_bootstrap(a, b, stats.f1_from_sums, seed=0)
    assert result.score_a == 1.0
    assert result.difference == pytest.approx(1.0 - stats.f1_from_sums(b.sum(axis=0)))
    assert result.low > 0 and result.p_value < 0.01
    with pytest.raises(ValueError):
        stats.paired_bootstrap(a, b[:-1], "f1")


# ------------------------------------------------------------------------------------------------------- McNemar


def test_mcnemar_exact_binomial_by_hand() -> None:
    # b = 1 (A right, B wrong), c = 9 (A wrong, B right), plus 20 concordant pairs.
    correct_a = [1] + [0] * 9 + [1] * 10 + [0] * 10
    correct_b = [0] + [1] * 9 + [1] * 10 + [0] * 10
    result = stats.mcnemar(correct_a, correct_b)
    assert (result.b, result.c, result.statistic) == (1, 9, 1)
    assert result.p_value == pytest.approx(2 * 11 / 1024)  # 2 P(X <= 1), X ~ Binomial(10, 1/2)
    assert result.difference == pytest.approx(-8 / 30)
    assert stats.mcnemar(correct_b, correct_a).p_value == pytest.approx(result.p_value)


def test_mcnemar_without_discordant_pairs() -> None:
    assert stats.mcnemar([1, 0, 1], [True, False, True]).p_value == 1.0
    with pytest.raises(ValueError):
        stats.mcnemar([1, 2], [1, 0])


# ------------------------------------------------------------------------------------------ multiple comparisons


def test_holm_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    assert stats.holm([]) == []
    with pytest.raises(ValueError):
        stats.holm([0.1, 1.2])


def test_win_tie_loss() -> None:
    results = [stats.PairedResult(0.1, 0.05, 0.15, 0.001, 0.95, 0.8, 0.7),
               stats.PairedResult(-0.1, -0.15, -0.05, 0.002, 0.95, 0.7, 0.8),
               stats.PairedResult(0.01, -0.02, 0.04, 0.3, 0.95, 0.71, 0.7),
               stats.PairedResult(0.02, 0.001, 0.04, 0.02, 0.95, 0.72, 0.7)]
    holm_corrected = stats.win_tie_loss(results)  # 0.02 * 2 = 0.04 after Holm: still a win
    assert holm_corrected == {"win": 2, "tie": 1, "loss": 1, "outcomes": ["win", "loss", "tie", "win"]}
    explicit = stats.win_tie_loss(results, alpha=0.05, p_values=[0.004, 0.006, 0.6, 0.08])
    assert explicit["outcomes"] == ["win", "loss", "tie", "tie"]
    assert stats.win_tie_loss([stats.mcnemar([1] * 12, [0] * 12)])["win"] == 1
    with pytest.raises(ValueError):
        stats.win_tie_loss(results, p_values=[0.1])


# ------------------------------------------------------------------------------------------------ ranks and scales

SCORES = np.array([[0.9, 0.5, 10.0],   # model 0
                   [0.8, 0.5, 20.0],   # model 1: ties model 0 on task 1
                   [0.7, 0.4, 5.0]])   # model 2: best on task 2 (lower is better there)
DIRECTIONS = [True, True, False]


def test_task_and_mean_ranks_with_ties() -> None:
    assert stats.task_ranks(SCORES, DIRECTIONS).tolist() == [[1, 1.5, 2], [2, 1.5, 3], [3, 3, 1]]
    assert stats.mean_rank(SCORES, DIRECTIONS) == pytest.approx([4.5 / 3, 6.5 / 3, 7 / 3])
    assert stats.borda(SCORES, DIRECTIONS).tolist() == [4.5, 2.5, 2.0]
    frame = pd.DataFrame(SCORES, index=["m0", "m1", "m2"], columns=["acc", "f1", "wer"])
    by_name = stats.mean_rank(frame, {"acc": True, "f1": True, "wer": False})
    assert by_name == pytest.approx(stats.mean_rank(SCORES, DIRECTIONS))


def test_ranks_over_seeds_average_first() -> None:
    per_seed = np.stack([SCORES - 0.01, SCORES + 0.01], axis=2)
    assert stats.mean_rank(per_seed, DIRECTIONS) == pytest.approx(stats.mean_rank(SCORES, DIRECTIONS))


def test_rank_interval() -> None:
    intervals = stats.rank_interval(SCORES, DIRECTIONS, seed=0)
    assert [i.estimate for i in intervals] == pytest.approx(stats.mean_rank(SCORES, DIRECTIONS).tolist())
    assert all(1 <= i.low <= i.estimate <= i.high <= 3 for i in intervals)
    assert intervals == stats.rank_interval(SCORES, DIRECTIONS, seed=0)
    dominant = np.array([[3.0, 3.0, 3.0], [2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    assert [(i.low, i.high) for i in stats.rank_interval(dominant)] == [(1, 1), (2, 2), (3, 3)]
    seeds = np.random.default_rng(0).random((4, 5, 3))
    with_seeds = stats.rank_interval(seeds, seed=1, n_resamples=500)
    assert len(with_seeds) == 4 and all(1 <= i.low <= i.high <= 4 for i in with_seeds)


def test_normalised_score() -> None:
    assert stats.normalised_score(0.1, low=0.1, high=1.0) == 0.0  # chance
    assert stats.normalised_score(0.55, low=0.1, high=1.0) == pytest.approx(0.5)
    assert stats.normalised_score(0.45, low=0.9, high=0.0) == pytest.approx(0.5)  # lower-is-better error rate
    assert stats.normalised_score(np.array([0.1, 1.0]), 0.1, 1.0).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        stats.normalised_score(0.5, 1.0, 1.0)


# ------------------------------------------------------------------------------------------- records, determinism


def test_results_are_json_serialisable() -> None:
    a, b = _bernoulli(0.7, 50, 0), _bernoulli(0.5, 50, 1)
    for record in (stats.bootstrap_ci(a), stats.paired_bootstrap(a, b), stats.mcnemar(a, b),
                   stats.hierarchical_bootstrap([a, b]), stats.rank_interval(SCORES)[0]):
        assert json.loads(json.dumps(record.to_dict())) == record.to_dict()


def test_every_resampling_function_is_deterministic() -> None:
    a, b = _bernoulli(0.7, 80, 0), _bernoulli(0.5, 80, 1)
    calls = [lambda s: stats.stratified_bootstrap_iqm({"x": a, "y": b}, seed=s),
             lambda s: stats.hierarchical_bootstrap([a, b], seed=s),
             lambda s: stats.paired_bootstrap(a, b, seed=s),
             lambda s: stats.rank_interval(SCORES, seed=s)]
    for call in calls:
        assert call(11) == call(11)
