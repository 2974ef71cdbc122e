"""One label per example, for any modality: the head, loss, predictions and metrics.

Modality bases (text, image, audio) only add `collate_inputs`: how rows become backbone inputs.
Predictions keep the class probabilities, so calibration (ECE) and later re-scoring need no rerun.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from harness.metrics import MetricSpec, classification_metrics, classification_scores
from harness.protocol import TrainingProtocol
from harness.task import DatasetTask, Example, StepOutput

if TYPE_CHECKING:
    import torch

__all__ = ["ClassificationTask", "classification_metrics"]


class ClassificationTask(DatasetTask):
    """One label per example. Modality bases add `collate_inputs` and set `modality`, `kind`, `explainer`."""

    metrics: ClassVar[tuple[MetricSpec, ...]] = classification_metrics("accuracy")
    pooled_features: ClassVar[bool] = True  # the head pools by masked mean: frozen features cache exactly

    def build_head(self, backbone: Any, feature_dim: int) -> torch.nn.Module:
        from harness.backbones.heads import SequenceClassificationHead

        return SequenceClassificationHead(feature_dim, len(self.label_names))

    def collate_inputs(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                       train: bool) -> dict[str, Any]:
        raise NotImplementedError

    def collate_targets(self, rows: list[Example]) -> dict[str, Any]:
        import torch

        index = {t: i for i, t in enumerate(self.label_names)}
        return {"ids": [r.id for r in rows],
                "labels": torch.tensor([index[r.target] for r in rows], dtype=torch.long)}

    def collate(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                train: bool = False) -> dict[str, Any]:
        return self.collate_targets(rows) | {"inputs": self.collate_inputs(rows, backbone, protocol, train)}

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        import torch.nn.functional as F

        if type(self).step is not ClassificationTask.step:  # a task with its own step trains on its loss
            return self.step(model, batch).loss
        return F.cross_entropy(model(batch["inputs"]).float(), batch["labels"])

    def step(self, model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput:
        import torch.nn.functional as F

        logits = model(batch["inputs"]).float()
        loss = F.cross_entropy(logits, batch["labels"])
        probs = logits.detach().softmax(-1).cpu()
        preds = [{"label": self.label_names[int(p.argmax())], "probs": [round(v, 6) for v in p.tolist()]}
                 for p in probs]
        refs = [self.label_names[i] for i in batch["labels"].tolist()]
        return StepOutput(loss=loss, preds=preds, refs=refs)

    def compute_metrics(self, preds: list[Any], refs: list[Any]) -> dict[str, float]:
        index = {t: i for i, t in enumerate(self.label_names)}
        scores = classification_scores([index[p["label"]] for p in preds], [index[r] for r in refs],
                                       len(self.label_names), probs=[p["probs"] for p in preds])
        scores[self.metrics[0].name] = scores.pop("accuracy")  # "top1" for images
        return scores
