"""Faithfulness of an attribution: does removing what it ranks first change the model's output?

Model- and modality-free. An explainer hands over, per example, the attribution of each *unit* (a word,
an image cell, a time x mel block, an observation dimension) and a `score` function: given boolean keep
masks [variants, units] it returns the model's score for the explained output (a probability) with the
units where keep is False replaced by the baseline. From those:

- deletion / insertion curves (Petsiuk et al. 2018, RISE): remove (insert) units in ranking order; the
  area under the deletion curve is low and under the insertion curve high when the ranking is faithful.
  Both are also computed for random rankings of the same example: the reference to beat.
- ERASER comprehensiveness and sufficiency (DeYoung et al. 2020), as AOPC over the top 1, 5, 10, 20 and
  50% of units: how much the score drops without the rationale, and how much it drops with only it.

captum's own `infidelity`/`sensitivity_max` measure other things (perturbation consistency, stability);
the curves above are what the issue asks for and are a few lines of numpy over the shared score function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]  # keep masks [variants, units] (bool) -> scores [variants]
ERASER_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
MAX_CURVE_STEPS = 10


def ranking(attributions: np.ndarray) -> np.ndarray:
    """Units ordered from the most to the least attributed (signed: evidence *for* the explained output).
    Ties keep the unit order, so a ranking is deterministic."""
    return np.argsort(-np.asarray(attributions, dtype=float), kind="stable")


def curve_steps(n_units: int) -> np.ndarray:
    """How many units are removed at each point of a curve: every count for up to 10 units, else 11 points."""
    if n_units < 1:
        raise ValueError("an example needs at least one unit to explain")
    return np.unique(np.round(np.linspace(0, n_units, min(n_units, MAX_CURVE_STEPS) + 1)).astype(int))


def _top_masks(order: np.ndarray, counts: Sequence[int], keep_top: bool) -> np.ndarray:
    """Masks keeping (keep_top) or removing (not keep_top) the first `count` units of `order`."""
    masks = np.full((len(counts), len(order)), not keep_top)
    for row, count in enumerate(counts):
        masks[row, order[:count]] = keep_top
    return masks


def area(steps: np.ndarray, scores: np.ndarray, n_units: int) -> float:
    """Area under a curve whose x axis is the fraction of units removed/inserted (0..1), trapezoid rule."""
    return float(np.trapezoid(scores, steps / n_units))


def example_faithfulness(attributions: Any, score: ScoreFn, rng: np.random.Generator, n_random: int = 3,
                         bins: Sequence[float] = ERASER_BINS) -> dict[str, Any]:
    """Faithfulness numbers of one example's attribution (and of `n_random` random rankings of it)."""
    attributions = np.asarray(attributions, dtype=float).ravel()
    n = attributions.size
    steps = curve_steps(n)
    eraser_counts = [max(1, math.ceil(b * n)) for b in bins]
    orders = [ranking(attributions)] + [rng.permutation(n) for _ in range(n_random)]
    blocks = [np.ones((1, n), dtype=bool)]  # the unperturbed input first
    for order in orders:
        blocks += [_top_masks(order, steps, keep_top=False), _top_masks(order, steps, keep_top=True)]
    blocks += [_top_masks(orders[0], eraser_counts, keep_top=False), _top_masks(orders[0], eraser_counts, True)]
    scores = np.asarray(score(np.concatenate(blocks)), dtype=float)
    full, at = float(scores[0]), 1
    deletion, insertion = [], []
    for _ in orders:
        deletion.append(scores[at:at + len(steps)])
        insertion.append(scores[at + len(steps):at + 2 * len(steps)])
        at += 2 * len(steps)
    without_top = scores[at:at + len(bins)]
    only_top = scores[at + len(bins):at + 2 * len(bins)]
    return {
        "n_units": n,
        "full_score": full,
        "deletion_auc": area(steps, deletion[0], n),
        "insertion_auc": area(steps, insertion[0], n),
        "deletion_auc_random": float(np.mean([area(steps, c, n) for c in deletion[1:]])) if n_random else None,
        "insertion_auc_random": float(np.mean([area(steps, c, n) for c in insertion[1:]])) if n_random else None,
        "comprehensiveness": float(np.mean(full - without_top)),
        "sufficiency": float(np.mean(full - only_top)),
        "deletion_curve": [round(float(v), 6) for v in deletion[0]],
        "insertion_curve": [round(float(v), 6) for v in insertion[0]],
        "curve_fractions": [round(float(s / n), 6) for s in steps],
    }


def rank_correlation(a: Any, b: Any) -> float | None:
    """Spearman correlation of two attributions of the same units (None when either is constant)."""
    import scipy.stats

    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(scipy.stats.spearmanr(a, b).statistic)


SUMMARY_FIELDS = ("deletion_auc", "deletion_auc_random", "insertion_auc", "insertion_auc_random",
                  "comprehensiveness", "sufficiency", "randomisation_spearman")


def summarise(per_example: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Mean of each faithfulness number over the explained examples with a 95% bootstrap interval, and the
    paired attribution-vs-random differences with a Wilcoxon signed-rank p-value."""
    import scipy.stats

    from harness.stats import bootstrap_ci

    out: dict[str, Any] = {"n": len(per_example)}
    for name in SUMMARY_FIELDS:
        values = np.array([e[name] for e in per_example if e.get(name) is not None], dtype=float)
        if values.size:
            interval = bootstrap_ci(values, "mean", seed=seed)
            out[name] = {"mean": interval.estimate, "low": interval.low, "high": interval.high, "n": int(values.size)}
    for curve in ("deletion", "insertion"):
        pairs = [(e[f"{curve}_auc"], e[f"{curve}_auc_random"]) for e in per_example
                 if e.get(f"{curve}_auc_random") is not None]
        if not pairs:
            continue
        diff = np.array([a - r for a, r in pairs])
        interval = bootstrap_ci(diff, "mean", seed=seed)
        p_value = 1.0 if np.all(diff == 0) else float(scipy.stats.wilcoxon(diff).pvalue)
        out[f"{curve}_vs_random"] = {"mean": interval.estimate, "low": interval.low, "high": interval.high,
                                     "p_value": p_value, "n": len(pairs)}
    return out
