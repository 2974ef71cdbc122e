"""Metric definitions and the functions behind them, one place per metric.

A `MetricSpec` is a metric's single definition: its name, direction, description and, for metrics that
decompose over test examples, how each example's sufficient statistics are computed from (prediction,
reference) and which reducer of `harness.stats` turns column sums into the score. Leaderboard intervals
and paired tests resample exactly those statistics, so the bootstrap always scores the metric the task
reports. Task bases declare which of these metrics their `compute_metrics` returns.

Entity scoring is written here rather than called from seqeval because reports need per-sentence
sufficient statistics (true positives, predicted and gold counts) for paired bootstrap tests; the
result is tested to agree exactly with seqeval's strict IOB2 mode. Classification metrics come from
torchmetrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Entity = tuple[int, int, str]  # start, end (exclusive), type
Reducer = Literal["mean", "ratio", "f1"]  # harness.stats' named reducers of sufficient-statistic sums
PerExample = Callable[[Sequence[Any], Sequence[Any]], Any]  # (preds, refs) -> array [n_examples, k]


@dataclass(frozen=True)
class MetricSpec:
    """One metric, defined once.

    `per_example(preds, refs)` returns each example's sufficient statistics (rows of an [n, k] array) and
    `reducer` names how their column sums become the score ("mean": sums of (score, 1) give the mean;
    "f1": (tp, predicted, gold) give 2 tp / (predicted + gold)). Metrics without a per-example
    decomposition (macro-F1, ECE, RL returns) leave `per_example` None: reports then bootstrap over seeds.
    """

    name: str
    higher_is_better: bool = True
    description: str = ""
    per_example: PerExample | None = None
    reducer: Reducer = "mean"

    def example_statistics(self, preds: Sequence[Any], refs: Sequence[Any]) -> Any:
        """The [n, k] float array the bootstraps resample, or None when the metric does not decompose."""
        import numpy as np

        if self.per_example is None:
            return None
        return np.asarray(self.per_example(preds, refs), dtype=float)


def iob2_entities(tags: Sequence[str]) -> set[Entity]:
    """Entities under strict IOB2: a B-X followed by the longest run of I-X. A stray I-X is not one."""
    entities: set[Entity] = set()
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if start is not None and not (prefix == "I" and label == kind):
            entities.add((start, i, kind))
            start, kind = None, None
        if prefix == "B":
            start, kind = i, label
    return entities


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def entity_counts(pred: Sequence[str], ref: Sequence[str]) -> dict[str, Counter]:
    """Per-type true-positive, predicted and gold entity counts of one sentence."""
    p, g = iob2_entities(pred), iob2_entities(ref)
    return {
        "tp": Counter(kind for _, _, kind in p & g),
        "pred": Counter(kind for _, _, kind in p),
        "gold": Counter(kind for _, _, kind in g),
    }


def entity_scores(preds: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision/recall/F1 over entities, plus F1 per entity type (types seen in gold or preds)."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
    totals = {"tp": Counter(), "pred": Counter(), "gold": Counter()}
    for pred, ref in zip(preds, refs, strict=True):
        if len(pred) != len(ref):
            raise ValueError(f"prediction of {len(pred)} tags for a sentence of {len(ref)}")
        for key, counts in entity_counts(pred, ref).items():
            totals[key].update(counts)
    precision, recall, f1 = _prf(sum(totals["tp"].values()), sum(totals["pred"].values()),
                                 sum(totals["gold"].values()))
    scores = {"entity_f1": f1, "entity_precision": precision, "entity_recall": recall}
    for kind in sorted(set(totals["gold"]) | set(totals["pred"])):
        scores[f"f1_{kind}"] = _prf(totals["tp"][kind], totals["pred"][kind], totals["gold"][kind])[2]
    return scores


def entity_statistics(preds: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> Any:
    """Per sentence (true positives, predicted, gold entities): the entity F1 of any resample is
    2 tp / (predicted + gold) of the column sums."""
    import numpy as np

    rows = []
    for pred, ref in zip(preds, refs, strict=True):
        counts = entity_counts(pred, ref)
        rows.append([sum(counts["tp"].values()), sum(counts["pred"].values()), sum(counts["gold"].values())])
    return np.array(rows, dtype=float).reshape(-1, 3)


def label_correctness(preds: Sequence[dict[str, Any]], refs: Sequence[str]) -> Any:
    """Per example 1.0 when the predicted label is right, else 0.0: accuracy is their mean."""
    import numpy as np

    return np.array([float(p["label"] == r) for p, r in zip(preds, refs, strict=True)])


ENTITY_F1 = MetricSpec("entity_f1", description="entity-level strict IOB2 micro F1", per_example=entity_statistics,
                       reducer="f1")
ENTITY_PRECISION = MetricSpec("entity_precision", description="entity-level strict IOB2 micro precision")
ENTITY_RECALL = MetricSpec("entity_recall", description="entity-level strict IOB2 micro recall")
ENTITY_METRICS = (ENTITY_F1, ENTITY_PRECISION, ENTITY_RECALL)
MACRO_F1 = MetricSpec("macro_f1", description="macro-averaged F1 (every class weighs the same)")
ECE = MetricSpec("ece", higher_is_better=False, description="expected calibration error, 15 bins")


def classification_metrics(accuracy_name: str = "accuracy") -> tuple[MetricSpec, ...]:
    """What `ClassificationTask.compute_metrics` reports, primary first; image tasks call accuracy "top1"."""
    accuracy = MetricSpec(accuracy_name, description="top-1 accuracy", per_example=label_correctness)
    return (accuracy, MACRO_F1, ECE)


CONTROL_METRICS = (
    MetricSpec("iqm_return", description="interquartile mean of the evaluation episodes' returns"),
    MetricSpec("mean_return", description="mean evaluation return"),
    MetricSpec("iqm_return_low", description="95% bootstrap interval of the IQM, lower end"),
    MetricSpec("iqm_return_high", description="95% bootstrap interval of the IQM, upper end"),
)


def classification_scores(preds: Sequence[int], refs: Sequence[int], num_classes: int,
                          probs: Sequence[Sequence[float]] | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (every class weighs the same, including ones never predicted); with class
    probabilities also the expected calibration error (15 equal-width confidence bins, L1)."""
    import torch
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_calibration_error,
        multiclass_f1_score,
    )

    p, r = torch.tensor(list(preds)), torch.tensor(list(refs))
    scores = {
        "accuracy": multiclass_accuracy(p, r, num_classes=num_classes, average="micro").item(),
        "macro_f1": multiclass_f1_score(p, r, num_classes=num_classes, average="macro").item(),
    }
    if probs is not None:
        scores["ece"] = multiclass_calibration_error(torch.tensor(list(probs), dtype=torch.float32), r,
                                                     num_classes=num_classes, n_bins=15, norm="l1").item()
    return scores
