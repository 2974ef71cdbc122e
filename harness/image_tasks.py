"""Image classification on any registered vision backbone. Example.input: a uint8 image array
(H x W grayscale or H x W x 3 RGB); Example.target: a label name. The backbone's own preprocessing
(interpolation, mean/std) is applied; the protocol may set `image_size` (e.g. 64 px for CPU runs)."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.classification import ClassificationTask
from harness.metrics import MetricSpec, classification_metrics
from harness.protocol import TrainingProtocol
from harness.task import Example, Modality


class ImageClassificationTask(ClassificationTask):
    modality: ClassVar[Modality] = "image"
    kind: ClassVar[str] = "image-classification"
    metrics: ClassVar[tuple[MetricSpec, ...]] = classification_metrics("top1")
    explainer: ClassVar[str] = "image"

    def collate_inputs(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                       train: bool) -> dict[str, Any]:
        import torch

        transform = self._transform(backbone, protocol.inputs.get("image_size"), train)
        return {"pixel_values": torch.stack([transform(r.input) for r in rows])}

    def _transform(self, backbone: Any, image_size: int | None, train: bool) -> Any:
        from harness.backbones.vision_transforms import build_transform

        cache = self.__dict__.setdefault("_transforms", {})
        key = (id(backbone), image_size, train)
        if key not in cache:
            cache[key] = build_transform(backbone.data_config, image_size=image_size, train=train)
        return cache[key]
