"""Reusable bases for text tasks: word-level tagging and sequence classification.

Public API for plugin authors (the built-in `ner` and `sentiment` use exactly this, no back door):
subclass, set `spec`, `protocols` and `label_names`, implement `read_splits()` and `data_fingerprint()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

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

    def input_lengths(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol) -> list[int]:
        return [len(e.input_ids) for e in encode_rows(self, rows, backbone, protocol, words=True)]

    def collate(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                train: bool = False) -> dict[str, Any]:
        import torch

        encoded = encode_rows(self, rows, backbone, protocol, words=True)
        inputs, offsets = pad_encodings(backbone.tokenizer, encoded)
        label_index = {t: i for i, t in enumerate(self.label_names)}
        labels = torch.full(inputs["input_ids"].shape, -100, dtype=torch.long)
        word_index = torch.full(inputs["input_ids"].shape, -1, dtype=torch.long)
        for i, (row, encoding) in enumerate(zip(rows, encoded, strict=True)):
            previous = None
            for position, word in enumerate(encoding.word_ids, offsets[i]):
                if word is not None and word != previous:
                    labels[i, position] = label_index[row.target[word]]
                    word_index[i, position] = word
                previous = word
        return {
            "ids": [r.id for r in rows],
            "inputs": inputs,
            "labels": labels,
            "word_index": word_index,
            "targets": [list(r.target) for r in rows],
        }

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        import torch.nn.functional as F

        if type(self).step is not TokenClassificationTask.step:  # a task with its own step trains on its loss
            return self.step(model, batch).loss
        logits = model(batch["inputs"])
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100)

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

    def input_lengths(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol) -> list[int]:
        return [len(e.input_ids) for e in encode_rows(self, rows, backbone, protocol, words=False)]

    def collate_inputs(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                       train: bool) -> dict[str, Any]:
        inputs, _ = pad_encodings(backbone.tokenizer, encode_rows(self, rows, backbone, protocol, words=False))
        return inputs


class Encoding(NamedTuple):
    input_ids: list[int]
    word_ids: list[int | None]  # empty unless the input was split into words


def encode_rows(task: Any, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                words: bool) -> list[Encoding]:
    """Each row tokenised (truncated, not padded) once per tokenizer and max_length, not once per batch
    per epoch: the rows a call has not seen yet are tokenised together and kept on the task, keyed by their
    text (ids need not be unique across splits)."""
    tokenizer, max_length = backbone.tokenizer, _max_length(protocol)
    cache = task.__dict__.setdefault("_encodings", {}).setdefault((tokenizer.name_or_path, max_length, words), {})
    keys = [tuple(r.input) if words else r.input for r in rows]
    missing = list(dict.fromkeys(k for k in keys if k not in cache))
    if missing:
        encoded = tokenizer([list(k) if words else k for k in missing], is_split_into_words=words, truncation=True,
                            max_length=max_length)
        for i, key in enumerate(missing):
            cache[key] = Encoding(encoded["input_ids"][i], encoded.word_ids(i) if words else [])
    return [cache[k] for k in keys]


def pad_encodings(tokenizer: Any, encodings: list[Encoding]) -> tuple[dict[str, torch.Tensor], list[int]]:
    """The batch padded to its longest row by the tokenizer (its pad id and side), and where each row's
    first token landed (its offset: non-zero only under left padding)."""
    padded = tokenizer.pad({"input_ids": [e.input_ids for e in encodings]}, padding=True, return_tensors="pt")
    width = padded["input_ids"].shape[1]
    left = tokenizer.padding_side == "left"
    offsets = [width - len(e.input_ids) if left else 0 for e in encodings]
    return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}, offsets
