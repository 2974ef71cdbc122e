"""Metric definitions and the functions behind them, one place per metric.

A `MetricSpec` is a metric's single definition: its name, direction, description and, for metrics that
decompose over test examples, how each example's sufficient statistics are computed from (prediction,
reference) and which reducer of `harness.stats` turns column sums into the score. Leaderboard intervals
and paired tests resample exactly those statistics, so the bootstrap always scores the metric the task
reports. Task bases declare which of these metrics their `compute_metrics` returns.

Entity scoring is written here rather than called from seqeval because reports need per-sentence
sufficient statistics (true positives, predicted and gold counts) for paired bootstrap tests; the
result is tested to agree exactly with seqeval's strict IOB2 mode. Classification metrics (accuracy, macro-F1,
expected calibration error) are also computed here, in float32 as torchmetrics computes them, and tested to agree
exactly with torchmetrics: importing torchmetrics costs about 3 s in every process (it loads scipy.signal and
matplotlib), more than training a head on cached frozen features takes.
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
    """Accuracy and macro-F1 (every class weighs the same, including ones never predicted; a class neither
    predicted nor present is left out); with class probabilities also the expected calibration error (15
    equal-width confidence bins, L1). Agrees exactly with torchmetrics' multiclass_accuracy (micro),
    multiclass_f1_score (macro) and multiclass_calibration_error (see the module's docstring for why it is
    not called)."""
    import torch

    p = torch.tensor(list(preds), dtype=torch.long)
    r = torch.tensor(list(refs), dtype=torch.long)
    if p.shape != r.shape:
        raise ValueError(f"{len(p)} predictions for {len(r)} references")
    if len(r) and (min(p.min(), r.min()) < 0 or max(p.max(), r.max()) >= num_classes):
        raise ValueError(f"class indices must lie in [0, {num_classes})")
    confusion = torch.bincount(r * num_classes + p, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)  # [reference, prediction]
    tp = confusion.diagonal()
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    f1 = _safe_divide(2.0 * tp, 2.0 * tp + fn + fp)
    weights = torch.ones_like(f1)
    weights[tp + fp + fn == 0] = 0.0
    scores = {"accuracy": _safe_divide(tp.sum(), (tp + fn).sum()).item(),
              "macro_f1": _safe_divide(weights * f1, weights.sum(-1, keepdim=True)).sum(-1).item()}
    if probs is not None:
        scores["ece"] = calibration_error(torch.tensor(list(probs), dtype=torch.float32), r, bins=15)
    return scores


def calibration_error(probs: Any, refs: Any, bins: int = 15) -> float:
    """Top-label expected calibration error, L1 over `bins` equal-width confidence bins. `probs` is a float
    tensor [n, classes] (logits are softmaxed, as torchmetrics does), `refs` a long tensor [n]."""
    import torch

    if not torch.all((probs >= 0) * (probs <= 1)):
        probs = torch.softmax(probs, dim=1)
    confidences, predicted = probs.max(dim=1)
    confidences = confidences.float()
    correct = predicted.eq(refs).to(confidences.dtype)
    bounds = torch.linspace(0, 1, bins + 1, dtype=confidences.dtype)
    which = torch.bucketize(confidences, bounds, right=True) - 1  # a confidence of exactly 1 has a bin of its own
    count = torch.zeros(bins + 1, dtype=confidences.dtype).scatter_add_(0, which, torch.ones_like(confidences))
    mean_confidence = torch.zeros_like(count).scatter_add_(0, which, confidences)
    mean_confidence = torch.nan_to_num(mean_confidence / count)
    accuracy = torch.nan_to_num(torch.zeros_like(count).scatter_add_(0, which, correct) / count)
    return torch.sum(torch.abs(accuracy - mean_confidence) * (count / count.sum())).item()


def _safe_divide(num: Any, denom: Any) -> Any:
    """num / denom in float32 (integers converted), 0 where denom is 0."""
    import torch

    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / denom, torch.zeros((), dtype=num.dtype))
