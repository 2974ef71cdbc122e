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


def ranking(attributions: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Units ordered from the most to the least attributed (signed: evidence *for* the explained output).
    Ties are broken by `rng` (seeded, so still reproducible): an attribution that cannot tell units apart
    must not borrow an order from the units' layout (top-left cells first, first words first)."""
    values = -np.asarray(attributions, dtype=float)
    if rng is None:
        return np.argsort(values, kind="stable")
    return np.lexsort((rng.random(values.size), values))


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
    orders = [ranking(attributions, rng)] + [rng.permutation(n) for _ in range(n_random)]
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
        "constant_attribution": bool(np.all(attributions == attributions[0])),  # ranks nothing: random order
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
                  "comprehensiveness", "sufficiency", "randomisation_spearman", "ig_completeness_gap")


def _cluster(example: dict[str, Any]) -> str:
    """The unit of independent sampling: the test example (an NER sentence's entities share one: 'id#k').
    An example without an id is a cluster of its own."""
    if example.get("id") is None:
        return f"item@{id(example)}"
    return str(example["id"]).split("#")[0]


def summarise(per_example: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Each faithfulness number's mean with a 95% interval, and the paired attribution-vs-random differences
    with a Wilcoxon signed-rank p-value.

    Examples may carry a "run" key (a report pooling seeds): the estimate is then the mean over runs of each
    run's mean, and the interval a two-stage bootstrap over runs and, within each, test examples. Entities of
    one sentence are one cluster, both for the interval and for the Wilcoxon test (run on cluster means)."""
    import scipy.stats

    from harness.stats import nested_bootstrap

    out: dict[str, Any] = {"n": len(per_example)}
    units = [int(e["n_units"]) for e in per_example if e.get("n_units") is not None]
    if units:  # with few units the curves are coarse and ERASER's 1-10% bins all mean "the top unit"
        out["units"] = {"min": min(units), "median": float(np.median(units)), "max": max(units)}
    out["constant_attributions"] = sum(1 for e in per_example if e.get("constant_attribution"))
    out["runs"] = len({e.get("run", "") for e in per_example})

    def interval(rows: list[dict[str, Any]], values: np.ndarray) -> dict[str, Any]:
        result = nested_bootstrap(values, [r.get("run", "") for r in rows], [_cluster(r) for r in rows], seed=seed)
        return {"mean": result.estimate, "low": result.low, "high": result.high, "n": int(values.size)}

    for name in SUMMARY_FIELDS:
        rows = [e for e in per_example if e.get(name) is not None]
        if rows:
            out[name] = interval(rows, np.array([e[name] for e in rows], dtype=float))
    for curve in ("deletion", "insertion"):
        rows = [e for e in per_example if e.get(f"{curve}_auc_random") is not None]
        if not rows:
            continue
        diff = np.array([e[f"{curve}_auc"] - e[f"{curve}_auc_random"] for e in rows])
        by_cluster: dict[tuple[str, str], list[float]] = {}
        for row, d in zip(rows, diff, strict=True):
            by_cluster.setdefault((str(row.get("run", "")), _cluster(row)), []).append(float(d))
        cluster_means = np.array([np.mean(v) for v in by_cluster.values()])
        p_value = 1.0 if np.all(cluster_means == 0) else float(scipy.stats.wilcoxon(cluster_means).pvalue)
        out[f"{curve}_vs_random"] = interval(rows, diff) | {"p_value": p_value, "clusters": len(cluster_means)}
    return out
