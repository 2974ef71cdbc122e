from __future__ import annotations

import random

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from harness.metrics import classification_scores, entity_scores, iob2_entities


def test_iob2_entities_strict() -> None:
    assert iob2_entities(["B-per", "I-per", "O", "B-loc"]) == {(0, 2, "per"), (3, 4, "loc")}
    assert iob2_entities(["I-per", "I-per"]) == set()  # no B: not an entity in strict mode
    assert iob2_entities(["B-per", "I-loc"]) == {(0, 1, "per")}  # type change ends the entity
    assert iob2_entities(["B-per", "B-per"]) == {(0, 1, "per"), (1, 2, "per")}


def test_entity_scores_hand_computed() -> None:
    refs = [["B-per", "I-per", "O", "B-loc"], ["B-org", "O"]]
    preds = [["B-per", "I-per", "O", "O"], ["B-org", "B-loc"]]
    scores = entity_scores(preds, refs)
    # gold 3 entities, predicted 3, 2 correct
    assert scores["entity_precision"] == pytest.approx(2 / 3)
    assert scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3)
    assert scores["f1_per"] == 1.0 and scores["f1_loc"] == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_entity_scores_agree_with_seqeval_strict_iob2(seed: int) -> None:
    rng = random.Random(seed)
    tags = ["O", "B-a", "I-a", "B-b", "I-b", "B-c-d", "I-c-d"]
    refs = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(30)]
    preds = [[rng.choice(tags) if rng.random() < 0.5 else t for t in r] for r in refs]
    ours = entity_scores(preds, refs)
    kwargs = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    assert ours["entity_f1"] == pytest.approx(f1_score(refs, preds, **kwargs), abs=1e-12)
    assert ours["entity_precision"] == pytest.approx(precision_score(refs, preds, **kwargs), abs=1e-12)
    assert ours["entity_recall"] == pytest.approx(recall_score(refs, preds, **kwargs), abs=1e-12)
    report = classification_report(refs, preds, output_dict=True, **kwargs)
    for kind in ("a", "b", "c-d"):
        if kind in report:
            assert ours[f"f1_{kind}"] == pytest.approx(report[kind]["f1-score"], abs=1e-12)


def test_classification_scores_known_case() -> None:
    scores = classification_scores([0, 0, 1, 2], [0, 1, 1, 2], num_classes=3)
    assert scores["accuracy"] == pytest.approx(0.75)
    # per-class F1: class0 2/3, class1 2/3, class2 1 -> macro 7/9
    assert scores["macro_f1"] == pytest.approx(7 / 9)
    assert "ece" not in scores


def test_expected_calibration_error_known_case() -> None:
    # Two examples at confidence 0.9 (one right, one wrong) and two at 0.6 (both right):
    # |0.9 - 0.5| * 2/4 + |0.6 - 1.0| * 2/4 = 0.4
    probs = [[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]]
    scores = classification_scores([0, 0, 1, 1], [0, 1, 1, 1], num_classes=2, probs=probs)
    assert scores["ece"] == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(40))
def test_classification_scores_equal_torchmetrics(seed: int) -> None:
    """The classification metrics are computed here (torchmetrics' import costs seconds per process) and must
    give torchmetrics' numbers bit for bit, so records made before and after the change never differ."""
    import torch
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_calibration_error,
        multiclass_f1_score,
    )

    rng = random.Random(seed)
    classes = rng.choice([2, 3, 5, 20])
    n = rng.choice([1, 2, 7, 64, 401])
    refs = [rng.randrange(classes) for _ in range(n)]
    # some classes never predicted, some never present, confidences at the bin edges and at exactly 1
    preds = [r if rng.random() < 0.7 else rng.randrange(max(1, classes // 2)) for r in refs]
    logits = torch.randn(n, classes, generator=torch.Generator().manual_seed(seed)) * rng.choice([0.5, 3.0, 30.0])
    probs = torch.softmax(logits, dim=1)
    if seed % 4 == 0:
        probs[0] = torch.nn.functional.one_hot(torch.tensor(refs[0]), classes).float()
    if seed % 4 == 1:  # logits rather than probabilities: both softmax them
        probs = logits
    ours = classification_scores(preds, refs, classes, probs=probs.tolist())
    p, r = torch.tensor(preds), torch.tensor(refs)
    expected = {
        "accuracy": multiclass_accuracy(p, r, num_classes=classes, average="micro").item(),
        "macro_f1": multiclass_f1_score(p, r, num_classes=classes, average="macro").item(),
        "ece": multiclass_calibration_error(torch.tensor(probs.tolist()), r, num_classes=classes, n_bins=15,
                                            norm="l1").item(),
    }
    assert ours == expected


def test_classification_scores_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3"):
        classification_scores([0, 1], [0, 1, 1], num_classes=2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_scores([0, 2], [0, 1], num_classes=2)
