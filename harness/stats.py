"""Statistics for leaderboards, model comparisons and RL evaluation.

Every resampling function takes an explicit ``seed`` (an int or a ``np.random.Generator``) and is deterministic for
it. Resampling is vectorised: a bootstrap draws a matrix of row indices, turns it into per-resample row counts and
takes column sums with one matrix product, in memory-bounded chunks of resamples rather than a Python loop over them.

Metrics that are not means of per-example scores (entity F1, word error rate, micro ratios) are handled through
*sufficient statistics*: each example contributes a row of counts (for F1: true positives, predicted and gold
entities), a resample is the column sums of its rows, and a ``metric_from_sums`` callable turns sums into the score.
Such a callable receives an array ``[..., k]`` (statistics on the last axis) and returns ``[...]``, so one call scores
all resamples; write it with ``sums[..., j]`` or wrap a scalar-only function with :func:`vectorize_metric`.
A plain per-example score (0/1 correctness) is the ``"mean"`` metric: sums of ``(score, 1)``.

Intervals are percentile bootstrap intervals unless said otherwise. Paired-bootstrap p-values invert the percentile
interval (see :func:`paired_bootstrap`), so a comparison is significant at ``alpha`` exactly when its ``1 - alpha``
interval excludes zero, up to resampling granularity.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import scipy.stats

Seed = int | np.random.Generator
MetricFromSums = Callable[[np.ndarray], Any]  # sums [..., k] -> scores [...]
Statistic = Literal["mean", "iqm", "median"] | Callable[..., Any]

_MAX_CELLS = 1 << 22  # index/count cells held at once by one chunk of resamples (~32 MiB of int64)


# ----------------------------------------------------------------------------------------------------------- results


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (numpy scalars become Python numbers)."""
        return {k: v.item() if isinstance(v, np.generic) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Interval(_Record):
    """A point estimate with a two-sided confidence interval at ``level`` (e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class PairedResult(_Record):
    """System A minus system B on the same examples: the difference, its interval and a two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    level: float
    score_a: float
    score_b: float


@dataclass(frozen=True)
class McNemarResult(_Record):
    """Exact McNemar test. ``b``: A right and B wrong; ``c``: A wrong and B right; ``statistic`` = min(b, c);
    ``difference`` = accuracy(A) - accuracy(B) = (b - c) / n."""

    statistic: int
    p_value: float
    b: int
    c: int
    difference: float
    n: int


class Comparison(Protocol):
    """Anything with a signed difference (A - B) and a p-value: PairedResult, McNemarResult."""

    @property
    def difference(self) -> float: ...

    @property
    def p_value(self) -> float: ...


# ------------------------------------------------------------------------------------------------------- validation


def _rng(seed: Seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def _finite(x: np.ndarray, what: str) -> np.ndarray:
    if x.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return x


def _as_scores(values: Any, what: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {x.shape}")
    return _finite(x, what)


# ------------------------------------------------------------------------------------------- metrics from sums


def ratio_from_sums(sums: np.ndarray) -> np.ndarray:
    """Column 0 over column 1 (a micro-averaged ratio, e.g. errors / reference words); NaN where column 1 is 0."""
    sums = np.asarray(sums, dtype=float)
    num, den = sums[..., 0], sums[..., 1]
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=den != 0)


def f1_from_sums(sums: np.ndarray) -> np.ndarray:
    """F1 from columns (tp, n_pred, n_gold): 2 tp / (n_pred + n_gold); 0 when there is nothing predicted or gold."""
    sums = np.asarray(sums, dtype=float)
    num, den = 2 * sums[..., 0], sums[..., 1] + sums[..., 2]
    return np.divide(num, den, out=np.zeros(np.shape(num)), where=den != 0)


def vectorize_metric(fn: Callable[[np.ndarray], float]) -> MetricFromSums:
    """Make a metric written for one sums vector ``[k]`` accept ``[..., k]`` (loops in Python: slower)."""

    def vectorized(sums: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(lambda row: float(fn(row)), -1, np.asarray(sums, dtype=float))

    return vectorized


_NAMED_METRICS: dict[str, MetricFromSums] = {"mean": ratio_from_sums, "ratio": ratio_from_sums, "f1": f1_from_sums}


def _prepare(values: Any, metric: str | MetricFromSums, what: str) -> tuple[np.ndarray, MetricFromSums]:
    """Per-example rows [n, k] and the metric on their sums. ``"mean"`` turns scores [n] into rows (score, 1)."""
    x = np.asarray(values, dtype=float)
    if metric == "mean":
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        x = _as_scores(x, what)
        return np.column_stack([x, np.ones_like(x)]), ratio_from_sums
    fn = _NAMED_METRICS.get(metric) if isinstance(metric, str) else metric
    if fn is None:
        raise ValueError(f"unknown metric {metric!r}; use one of {sorted(_NAMED_METRICS)} or a callable")
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2:
        raise ValueError(f"{what} must be [n_examples] or [n_examples, k], got shape {x.shape}")
    return _finite(x, what), fn


def _score(metric: MetricFromSums, sums: np.ndarray) -> np.ndarray:
    """The metric of every sums vector in ``sums`` [..., k], checked to reduce exactly the last axis."""
    hint = "; metric_from_sums must map sums [..., k] to [...] (use sums[..., j], or wrap it with vectorize_metric)"
    try:
        out = np.asarray(metric(sums), dtype=float)
    except (IndexError, TypeError, ValueError) as error:
        raise TypeError(f"metric_from_sums failed on sums of shape {sums.shape}: {error}{hint}") from error
    if out.shape != sums.shape[:-1]:
        raise TypeError(f"metric_from_sums returned shape {out.shape} for sums of shape {sums.shape}{hint}")
    return out


# ------------------------------------------------------------------------------------------------ resampling core


def _chunks(total: int, row_cells: int) -> Iterator[int]:
    step = max(1, _MAX_CELLS // max(1, row_cells))
    for start in range(0, total, step):
        yield min(step, total - start)


def _resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """[size, n] multiplicities of each of n items in ``size`` resamples of n drawn with replacement."""
    idx = rng.integers(0, n, size=(size, n))
    flat = (idx + n * np.arange(size)[:, None]).ravel()
    return np.bincount(flat, minlength=size * n).reshape(size, n).astype(float)


def _resampled_sums(rng: np.random.Generator, rows: np.ndarray, n_resamples: int) -> Iterator[np.ndarray]:
    """Column sums of ``rows`` [n, m] over bootstrap resamples of its rows, chunk by chunk: [chunk, m]."""
    n = rows.shape[0]
    for size in _chunks(n_resamples, n):
        yield _resample_counts(rng, n, size) @ rows


def _percentile_interval(estimate: float, distribution: np.ndarray, level: float) -> Interval:
    low, high = np.quantile(distribution, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(low), float(high), float(level))


def _sign_p_value(differences: np.ndarray) -> float:
    """Two-sided p from a bootstrap distribution of differences: twice the smaller share on either side of zero
    (zero counts on both sides), with +1 in numerator and denominator so it is never 0; capped at 1."""
    below, above = int(np.sum(differences <= 0)), int(np.sum(differences >= 0))
    return min(1.0, 2 * (min(below, above) + 1) / (differences.size + 1))


# ------------------------------------------------------------------------------------------ one-sample statistics


def iqm(values: Any) -> float:
    """Interquartile mean: the mean of the middle 50% of values (scipy.stats.trim_mean(x, 0.25), as in Agarwal et
    al. 2021). Robust to outlier runs yet less noisy than the median."""
    return float(scipy.stats.trim_mean(_as_scores(values), 0.25))


def _iqm_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return scipy.stats.trim_mean(x, 0.25, axis=axis)


_STATISTICS: dict[str, Callable[..., Any]] = {"mean": np.mean, "iqm": _iqm_axis, "median": np.median}


def _statistic(statistic: Statistic) -> tuple[Callable[..., Any], bool]:
    """The function and whether it is vectorised (takes ``axis``), as scipy.stats.bootstrap decides."""
    if isinstance(statistic, str):
        if statistic not in _STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; use one of {sorted(_STATISTICS)} or a callable")
        return _STATISTICS[statistic], True
    try:
        return statistic, "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return statistic, False


def bootstrap_ci(values: Any, statistic: Statistic = "mean", level: float = 0.95, n_resamples: int = 2000,
                 seed: Seed = 0, method: Literal["percentile", "basic", "bca"] = "percentile") -> Interval:
    """Bootstrap interval of a statistic of one sample (scipy.stats.bootstrap, percentile method by default).

    ``statistic``: "mean", "iqm", "median" or a callable; a callable taking ``axis`` is evaluated on all resamples at
    once. A single value or constant values give a zero-width interval (every resample equals the data)."""
    _check_level(level)
    _check_resamples(n_resamples)
    x = _as_scores(values)
    fn, vectorized = _statistic(statistic)
    estimate = float(fn(x, axis=-1) if vectorized else fn(x))
    if np.all(x == x[0]):
        return Interval(estimate, estimate, estimate, float(level))
    result = scipy.stats.bootstrap((x,), fn, n_resamples=n_resamples, vectorized=vectorized, confidence_level=level,
                                   method=method, rng=_rng(seed), batch=max(1, _MAX_CELLS // x.size))
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), float(level))


# ------------------------------------------------------------------------------------------------ across seeds/tasks


def _runs_by_task(scores: Mapping[str, Sequence[float]] | Any) -> list[np.ndarray]:
    if isinstance(scores, Mapping):
        runs = [_as_scores(v, f"scores of task {k!r}") for k, v in scores.items()]
    else:
        table = np.asarray(scores, dtype=float)
        if table.ndim == 1:
            table = table[:, None]
        if table.ndim != 2:
            raise ValueError(f"scores must be a runs x tasks table, got shape {table.shape}")
        runs = [_as_scores(table[:, j], f"scores of task {j}") for j in range(table.shape[1])]
    if not runs:
        raise ValueError("no tasks given")
    return runs


def stratified_bootstrap(scores_by_task: Mapping[str, Sequence[float]] | Any, statistic: Statistic = "iqm",
                         level: float = 0.95, n_resamples: int = 2000, seed: Seed = 0) -> Interval:
    """Stratified bootstrap (Agarwal et al. 2021): runs are resampled with replacement independently within each
    task, the statistic is taken over all resampled scores pooled, and the interval is the percentile interval.

    ``scores_by_task``: task -> per-run scores (tasks may have different numbers of runs) or a runs x tasks array.
    Scores of different tasks should first be put on one scale (see :func:`normalised_score`)."""
    _check_level(level)
    _check_resamples(n_resamples)
    runs = _runs_by_task(scores_by_task)
    fn, vectorized = _statistic(statistic)
    pooled = np.concatenate(runs)
    estimate = float(fn(pooled, axis=-1) if vectorized else fn(pooled))
    rng, parts = _rng(seed), []
    for size in _chunks(n_resamples, pooled.size):
        resampled = np.concatenate([r[rng.integers(0, r.size, size=(size, r.size))] for r in runs], axis=1)
        parts.append(fn(resampled, axis=-1) if vectorized else np.array([fn(row) for row in resampled]))
    return _percentile_interval(estimate, np.concatenate(parts), level)


def stratified_bootstrap_iqm(scores_by_task: Mapping[str, Sequence[float]] | Any, level: float = 0.95,
                             n_resamples: int = 2000, seed: Seed = 0) -> Interval:
    """IQM over all runs of all tasks with its stratified-bootstrap interval; with one task, the IQM across seeds."""
    return stratified_bootstrap(scores_by_task, "iqm", level=level, n_resamples=n_resamples, seed=seed)


def hierarchical_bootstrap(per_example: Sequence[Any], metric: str | MetricFromSums = "mean", level: float = 0.95,
                           n_resamples: int = 2000, seed: Seed = 0) -> Interval:
    """Interval for a model trained with several seeds and scored on one shared test set, covering both seed
    variance and test-set sampling.

    ``per_example``: one array per seed, all on the SAME examples in the same order: scores [n] (metric "mean") or
    sufficient statistics [n, k] with ``metric`` a metric_from_sums (e.g. :func:`f1_from_sums`, or "f1").
    Each resample draws seeds with replacement and, independently, example indices with replacement; the same
    example indices are used for every drawn seed (examples are shared). The metric of each drawn seed's resampled
    sums is averaged over the drawn seeds. The estimate is the mean over seeds of each seed's metric."""
    _check_level(level)
    _check_resamples(n_resamples)
    if len(per_example) == 0:
        raise ValueError("per_example holds no seeds")
    prepared = [_prepare(v, metric, f"per_example[{i}]") for i, v in enumerate(per_example)]
    fn = prepared[0][1]
    if len({rows.shape for rows, _ in prepared}) != 1:
        raise ValueError("every seed must score the same examples with the same number of statistics")
    stats = np.stack([rows for rows, _ in prepared])  # [seeds, examples, k]
    n_seeds, n, k = stats.shape
    estimate = float(np.mean(_score(fn, stats.sum(axis=1))))
    # Independent streams: the example draws do not depend on the number of seeds.
    example_rng, seed_rng = _rng(seed).spawn(2)
    wide = stats.transpose(1, 0, 2).reshape(n, n_seeds * k)
    parts = []
    for sums in _resampled_sums(example_rng, wide, n_resamples):
        per_seed = _score(fn, sums.reshape(-1, n_seeds, k))  # [chunk, seeds]
        drawn = _resample_counts(seed_rng, n_seeds, sums.shape[0])
        parts.append(np.sum(np.where(drawn > 0, per_seed, 0.0) * drawn, axis=1) / n_seeds)
    return _percentile_interval(estimate, np.concatenate(parts), level)


def nested_bootstrap(values: Any, runs: Sequence[Any], clusters: Sequence[Any], level: float = 0.95,
                     n_resamples: int = 2000, seed: Seed = 0) -> Interval:
    """Interval for the mean over runs of each run's mean value, when each run scored its OWN sample of items
    and items come in clusters that are not independent (several entities of one sentence).

    ``values[i]`` belongs to run ``runs[i]`` and cluster ``clusters[i]`` (clusters are nested in runs). Each
    resample draws runs with replacement and, within every drawn run, that run's clusters with replacement
    (a two-stage cluster bootstrap), so the interval covers seed-to-seed variation and the sampling of
    clusters, not only of items. One run, or singleton clusters, reduce it to the ordinary bootstrap."""
    _check_level(level)
    _check_resamples(n_resamples)
    x = _as_scores(values)
    if not len(runs) == len(clusters) == x.size:
        raise ValueError("values, runs and clusters must have one entry per item")
    rng = _rng(seed)
    run_index = pd.factorize(pd.Series(list(runs), dtype=object))[0]
    cluster_index = pd.factorize(pd.Series(list(zip(runs, clusters, strict=True)), dtype=object))[0]
    run_of_cluster = np.zeros(cluster_index.max() + 1, dtype=int)
    run_of_cluster[cluster_index] = run_index
    sums, counts = np.bincount(cluster_index, weights=x), np.bincount(cluster_index).astype(float)
    run_means, resampled = [], []
    for run in range(run_index.max() + 1):
        own = run_of_cluster == run
        run_means.append(sums[own].sum() / counts[own].sum())
        drawn_clusters = _resample_counts(rng, int(own.sum()), n_resamples)  # [resamples, clusters of run]
        resampled.append((drawn_clusters @ sums[own]) / (drawn_clusters @ counts[own]))
    per_run = np.stack(resampled)  # [runs, resamples]
    drawn_runs = _resample_counts(rng, len(run_means), n_resamples)  # [resamples, runs]
    distribution = np.sum(drawn_runs * per_run.T, axis=1) / len(run_means)
    return _percentile_interval(float(np.mean(run_means)), distribution, level)


def example_bootstrap(values: Any, metric: str | MetricFromSums = "mean", level: float = 0.95,
                      n_resamples: int = 2000, seed: Seed = 0) -> Interval:
    """Test-set bootstrap of one system's metric (per-example scores or sufficient statistics): the hierarchical
    bootstrap with a single seed."""
    return hierarchical_bootstrap([values], metric, level=level, n_resamples=n_resamples, seed=seed)


# ----------------------------------------------------------------------------------------------- paired comparisons


def paired_bootstrap(a: Any, b: Any, metric_from_sums: str | MetricFromSums = "mean", level: float = 0.95,
                     n_resamples: int = 2000, seed: Seed = 0) -> PairedResult:
    """Paired bootstrap of metric(A) - metric(B) for two systems scored on the same examples.

    ``a``, ``b``: per-example scores [n] (metric "mean") or sufficient statistics [n, k]. Example indices are
    resampled jointly for both systems. The interval is the percentile interval of the resampled differences.
    p-value (two-sided, percentile-interval inversion): twice the smaller fraction of resampled differences at or
    below zero / at or above zero, as (count + 1) / (n_resamples + 1), capped at 1. It is never exactly 0, is 1 for
    identical systems, and falls below alpha when the 1 - alpha percentile interval excludes zero."""
    _check_level(level)
    _check_resamples(n_resamples)
    rows_a, fn = _prepare(a, metric_from_sums, "a")
    rows_b, _ = _prepare(b, metric_from_sums, "b")
    if rows_a.shape != rows_b.shape:
        raise ValueError(f"a and b must score the same examples: shapes {rows_a.shape} and {rows_b.shape}")
    score_a, score_b = float(_score(fn, rows_a.sum(axis=0))), float(_score(fn, rows_b.sum(axis=0)))
    k = rows_a.shape[1]
    parts = [_score(fn, sums[:, :k]) - _score(fn, sums[:, k:])
             for sums in _resampled_sums(_rng(seed), np.hstack([rows_a, rows_b]), n_resamples)]
    differences = np.concatenate(parts)
    interval = _percentile_interval(score_a - score_b, differences, level)
    return PairedResult(interval.estimate, interval.low, interval.high, _sign_p_value(differences), float(level),
                        score_a, score_b)


def paired_hierarchical_bootstrap(a: Sequence[Any], b: Sequence[Any], metric: str | MetricFromSums = "mean",
                                  level: float = 0.95, n_resamples: int = 2000, seed: Seed = 0) -> PairedResult:
    """Paired comparison of two models trained with the same seeds and scored on one shared test set:
    mean over seeds of metric(A) minus mean over seeds of metric(B), covering seed variance and test-set sampling.

    ``a[i]`` and ``b[i]``: seed i's per-example scores [n] or sufficient statistics [n, k], all on the same examples
    in the same order. Each resample draws seed pairs with replacement (A's and B's run of one seed stay together)
    and, jointly for every drawn run, example indices with replacement (as :func:`hierarchical_bootstrap` does for
    one model). p-value as in :func:`paired_bootstrap`; with one seed it is the paired test-set bootstrap."""
    _check_level(level)
    _check_resamples(n_resamples)
    if len(a) == 0 or len(a) != len(b):
        raise ValueError(f"a and b need one entry per shared seed, got {len(a)} and {len(b)}")
    prepared = [_prepare(v, metric, f"{side}[{i}]") for side, runs in (("a", a), ("b", b)) for i, v in enumerate(runs)]
    fn = prepared[0][1]
    if len({rows.shape for rows, _ in prepared}) != 1:
        raise ValueError("every run must score the same examples with the same number of statistics")
    n_seeds = len(a)
    stats = np.stack([rows for rows, _ in prepared])  # [2 * seeds, examples, k]: A's seeds, then B's
    runs, n, k = stats.shape
    per_run = _score(fn, stats.sum(axis=1))
    score_a, score_b = float(per_run[:n_seeds].mean()), float(per_run[n_seeds:].mean())
    example_rng, seed_rng = _rng(seed).spawn(2)
    wide = stats.transpose(1, 0, 2).reshape(n, runs * k)
    parts = []
    for sums in _resampled_sums(example_rng, wide, n_resamples):
        scores = _score(fn, sums.reshape(-1, runs, k))  # [chunk, 2 * seeds]
        gaps = scores[:, :n_seeds] - scores[:, n_seeds:]
        drawn = _resample_counts(seed_rng, n_seeds, sums.shape[0])
        parts.append(np.sum(drawn * gaps, axis=1) / n_seeds)
    differences = np.concatenate(parts)
    interval = _percentile_interval(score_a - score_b, differences, level)
    return PairedResult(interval.estimate, interval.low, interval.high, _sign_p_value(differences), float(level),
                        score_a, score_b)


def paired_seed_bootstrap(a: Sequence[float], b: Sequence[float], level: float = 0.95, n_resamples: int = 2000,
                          seed: Seed = 0) -> PairedResult:
    """Paired comparison when runs share no test examples (RL episodes differ): the per-seed differences A - B,
    bootstrapped over seeds; p-value as in :func:`paired_bootstrap`. Identical scores give p = 1."""
    _check_level(level)
    _check_resamples(n_resamples)
    x, y = _as_scores(a, "a"), _as_scores(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b need one score per shared seed, got {x.size} and {y.size}")
    gaps = x - y
    differences = (_resample_counts(_rng(seed), gaps.size, n_resamples) @ gaps) / gaps.size
    interval = _percentile_interval(float(gaps.mean()), differences, level)
    return PairedResult(interval.estimate, interval.low, interval.high, _sign_p_value(differences), float(level),
                        float(x.mean()), float(y.mean()))


def _as_correct(values: Any, what: str) -> np.ndarray:
    x = np.asarray(values)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what} must be a non-empty one-dimensional array of 0/1 or booleans")
    if not np.all((x == 0) | (x == 1)):
        raise ValueError(f"{what} must hold only 0/1 or booleans")
    return x.astype(bool)


def mcnemar(correct_a: Any, correct_b: Any) -> McNemarResult:
    """Exact McNemar test of two classifiers on the same examples: a two-sided binomial test (p = 0.5) of the
    discordant pairs, b (A right, B wrong) against c (A wrong, B right). No discordant pairs gives p = 1."""
    a, b_ = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    if a.shape != b_.shape:
        raise ValueError(f"correct_a and correct_b differ in length: {a.size} and {b_.size}")
    b, c = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    p = 1.0 if b + c == 0 else float(scipy.stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(min(b, c), min(1.0, p), b, c, (b - c) / a.size, int(a.size))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values in the input order: step-down, monotone, capped at 1. Controls the
    family-wise error rate under any dependence between the tests."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must be a flat sequence of numbers in [0, 1]")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def win_tie_loss(results: Sequence[Comparison], alpha: float = 0.05,
                 p_values: Sequence[float] | None = None) -> dict[str, Any]:
    """Count wins, ties and losses of A against B over comparisons: a win when the corrected p < alpha and the
    difference > 0, a loss when the corrected p < alpha and the difference < 0, a tie otherwise.

    ``p_values``: corrected p-values, one per result, used as given; when omitted the results' own p-values are
    Holm-corrected as one family. Returns counts plus ``outcomes`` ("win"/"tie"/"loss") in input order."""
    corrected = holm([r.p_value for r in results]) if p_values is None else [float(p) for p in p_values]
    if len(corrected) != len(results):
        raise ValueError(f"{len(corrected)} p-values for {len(results)} results")
    outcomes = [_outcome(r.difference, p, alpha) for r, p in zip(results, corrected, strict=True)]
    return {"win": outcomes.count("win"), "tie": outcomes.count("tie"), "loss": outcomes.count("loss"),
            "outcomes": outcomes}


def _outcome(difference: float, p_value: float, alpha: float) -> str:
    if p_value < alpha and difference > 0:
        return "win"
    if p_value < alpha and difference < 0:
        return "loss"
    return "tie"


# ------------------------------------------------------------------------------------------------- ranks and scales


def normalised_score(score: Any, low: Any, high: Any) -> Any:
    """Min-max normalise: (score - low) / (high - low), so ``low`` (e.g. chance or majority-class score) maps to 0
    and ``high`` (e.g. 1.0 or the best known score) to 1. For a lower-is-better metric pass the worse reference as
    ``low`` and the better as ``high`` (high < low): the result is still higher-is-better. Broadcasts over arrays."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.any(high == low):
        raise ValueError("high and low references must differ")
    out = (np.asarray(score, dtype=float) - low) / (high - low)
    return float(out) if out.ndim == 0 else out


def _as_table(scores: Any, higher_is_better: bool | Sequence[bool] | Mapping[str, bool]) -> np.ndarray:
    """Scores as a models x tasks (x seeds) array, signed so that larger is better."""
    columns = list(scores.columns) if isinstance(scores, pd.DataFrame) else None
    table = np.asarray(scores, dtype=float)
    if table.ndim not in (2, 3):
        raise ValueError(f"scores must be models x tasks (x seeds), got shape {table.shape}")
    _finite(table, "scores")
    n_tasks = table.shape[1]
    if isinstance(higher_is_better, Mapping):
        if columns is None:
            raise ValueError("a higher_is_better mapping needs a DataFrame with task columns")
        directions = np.array([bool(higher_is_better[c]) for c in columns])
    else:
        directions = np.broadcast_to(np.asarray(higher_is_better, dtype=bool), (n_tasks,))
    sign = np.where(directions, 1.0, -1.0)
    return table * (sign[:, None] if table.ndim == 3 else sign)


def _task_ranks(signed: np.ndarray, axis: int = 0) -> np.ndarray:
    """Rank 1 = best along the model axis; tied models share the average of their ranks."""
    return scipy.stats.rankdata(-signed, method="average", axis=axis)


def task_ranks(scores: Any, higher_is_better: bool | Sequence[bool] | Mapping[str, bool] = True) -> np.ndarray:
    """models x tasks ranks within each task (1 = best, ties averaged). ``scores``: models x tasks array or
    DataFrame (rows models, columns tasks), or models x tasks x seeds (averaged over seeds first)."""
    signed = _as_table(scores, higher_is_better)
    return _task_ranks(signed.mean(axis=2) if signed.ndim == 3 else signed)


def mean_rank(scores: Any, higher_is_better: bool | Sequence[bool] | Mapping[str, bool] = True) -> np.ndarray:
    """Each model's rank averaged over tasks (lower is better); scale-free across tasks. Rows as in ``scores``."""
    return task_ranks(scores, higher_is_better).mean(axis=1)


def borda(scores: Any, higher_is_better: bool | Sequence[bool] | Mapping[str, bool] = True) -> np.ndarray:
    """Borda count: per task, the number of models a model beats (a tie counts half), summed over tasks. Higher is
    better; it orders models exactly as :func:`mean_rank` does."""
    ranks = task_ranks(scores, higher_is_better)
    return (ranks.shape[0] - ranks).sum(axis=1)


def rank_interval(scores: Any, higher_is_better: bool | Sequence[bool] | Mapping[str, bool] = True,
                  level: float = 0.95, n_resamples: int = 2000, seed: Seed = 0) -> list[Interval]:
    """Bootstrap interval on each model's mean rank, one Interval per model (rows as in ``scores``).

    Tasks are resampled with replacement; given models x tasks x seeds, each model's seeds are also resampled
    within each task (independently per model) and averaged before ranking."""
    _check_level(level)
    _check_resamples(n_resamples)
    signed = _as_table(scores, higher_is_better)
    estimates = _task_ranks(signed.mean(axis=2) if signed.ndim == 3 else signed).mean(axis=1)
    rng, parts = _rng(seed), []
    for size in _chunks(n_resamples, signed.size):
        parts.append(_resampled_mean_ranks(rng, signed, size))
    distribution = np.concatenate(parts)  # [n_resamples, models]
    return [_percentile_interval(estimates[m], distribution[:, m], level) for m in range(signed.shape[0])]


def _resampled_mean_ranks(rng: np.random.Generator, signed: np.ndarray, size: int) -> np.ndarray:
    n_models, n_tasks = signed.shape[:2]
    if signed.ndim == 3:
        n_seeds = signed.shape[2]
        picks = rng.integers(0, n_seeds, size=(size, *signed.shape))
        per_task = np.take_along_axis(np.broadcast_to(signed, picks.shape), picks, axis=-1).mean(axis=-1)
    else:
        per_task = np.broadcast_to(signed, (size, n_models, n_tasks))
    tasks = rng.integers(0, n_tasks, size=(size, 1, n_tasks))
    chosen = np.take_along_axis(per_task, np.broadcast_to(tasks, (size, n_models, n_tasks)), axis=-1)
    return _task_ranks(chosen, axis=1).mean(axis=-1)
