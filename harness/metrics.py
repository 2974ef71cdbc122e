"""Metric functions shared by tasks.

Entity scoring is written here rather than called from seqeval because reports need per-sentence
sufficient statistics (true positives, predicted and gold counts) for paired bootstrap tests; the
result is tested to agree exactly with seqeval's strict IOB2 mode. Classification metrics come from
torchmetrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

Entity = tuple[int, int, str]  # start, end (exclusive), type


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
