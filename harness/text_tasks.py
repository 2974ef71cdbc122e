"""Reusable bases for text tasks: word-level tagging and sequence classification.

Public API for plugin authors (the built-in `ner` and `sentiment` use exactly this, no back door):
subclass, set `spec`, `protocols` and `label_names`, implement `read_splits()` and `data_fingerprint()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from harness.classification import ClassificationTask
from harness.metrics import ENTITY_METRICS, MetricSpec, entity_scores
from harness.protocol import TrainingProtocol
from harness.task import DatasetTask, Example, Modality, StepOutput

if TYPE_CHECKING:
    import torch


def _max_length(protocol: TrainingProtocol) -> int:
    return int(protocol.inputs.get("max_length", 128))


class TokenClassificationTask(DatasetTask):
    """Word-level BIO tagging. Example.input: list of words; Example.target: list of tags.

    The first sub-word of each word carries the word's label (the others are ignored by the loss);
    at prediction, each word takes the tag predicted on its first sub-word. Words cut off by
    max_length are predicted 'O', so scores always cover whole sentences.
    """

    modality: ClassVar[Modality] = "text"
    kind: ClassVar[str] = "token-classification"
    metrics: ClassVar[tuple[MetricSpec, ...]] = ENTITY_METRICS
    explainer: ClassVar[str] = "entity"

    def build_head(self, backbone: Any, feature_dim: int) -> torch.nn.Module:
        from harness.backbones.heads import TokenClassificationHead

        return TokenClassificationHead(feature_dim, len(self.label_names))

    def collate(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                train: bool = False) -> dict[str, Any]:
        import torch

        encoded = backbone.tokenizer([r.input for r in rows], is_split_into_words=True, truncation=True,
                                     max_length=_max_length(protocol), padding=True, return_tensors="pt")
        label_index = {t: i for i, t in enumerate(self.label_names)}
        labels = torch.full(encoded["input_ids"].shape, -100, dtype=torch.long)
        word_index = torch.full(encoded["input_ids"].shape, -1, dtype=torch.long)
        for i, row in enumerate(rows):
            previous = None
            for position, word in enumerate(encoded.word_ids(i)):
                if word is not None and word != previous:
                    labels[i, position] = label_index[row.target[word]]
                    word_index[i, position] = word
                previous = word
        return {
            "ids": [r.id for r in rows],
            "inputs": {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]},
            "labels": labels,
            "word_index": word_index,
            "targets": [list(r.target) for r in rows],
        }

    def step(self, model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput:
        import torch.nn.functional as F

        logits = model(batch["inputs"])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100)
        predicted = logits.argmax(-1).cpu()
        word_index = batch["word_index"].cpu()
        preds = []
        for i, target in enumerate(batch["targets"]):
            tags = ["O"] * len(target)
            for position in (word_index[i] >= 0).nonzero().flatten().tolist():
                tags[word_index[i, position]] = self.label_names[predicted[i, position]]
            preds.append(tags)
        return StepOutput(loss=loss, preds=preds, refs=batch["targets"])

    def compute_metrics(self, preds: list[Any], refs: list[Any]) -> dict[str, float]:
        return entity_scores(preds, refs)


class SequenceClassificationTask(ClassificationTask):
    """One label per text. Example.input: the text; Example.target: a label name."""

    modality: ClassVar[Modality] = "text"
    kind: ClassVar[str] = "sequence-classification"
    explainer: ClassVar[str] = "sentence"

    def collate_inputs(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                       train: bool) -> dict[str, Any]:
        encoded = backbone.tokenizer([r.input for r in rows], truncation=True, padding=True,
                                     max_length=_max_length(protocol), return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
