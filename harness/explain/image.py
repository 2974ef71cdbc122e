"""Images: Grad-CAM on the final feature grid, upsampled to the input.

Grad-CAM (Selvaraju et al. 2017) through captum's LayerGradCam on the vision backbone's `feature_map` tap,
ReLU'd, bilinearly upsampled to the model's input size. For CNNs the tap holds the last convolutional
stage. For token-shaped backbones (ViT, DeiT, EVA) the adapter lays the last block's patch tokens back on
their grid before the tap (the token-to-grid reshape that pytorch-grad-cam documents for vision
transformers), so the same method applies; prefix (class) tokens are not part of the pooled features and
get no share. Faithfulness units are the input regions under the grid's positions
(Grad-CAM's own resolution: finer grids would only rank the interpolation); a removed region takes the
image's median colour.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.explain.base import Attribution, Explainer, ExplainSettings, Item, batched_scores
from harness.explain.visuals import class_average_figure, heat_overlay_figure

MAP_SIZE = 32  # heat maps are stored at this resolution in explanation.json


def cell_masks(height: int, width: int, rows: int, cols: int | None = None) -> torch.Tensor:
    """[rows*cols, H, W] one-hot masks of the cells of a rows x cols partition of the input (row-major)."""
    cols = cols or rows
    row = torch.arange(height) * rows // height
    col = torch.arange(width) * cols // width
    index = row[:, None] * cols + col[None, :]
    return F.one_hot(index, rows * cols).permute(2, 0, 1).float()


def resize_map(values: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.as_tensor(values, dtype=torch.float32)[None, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


class ImageExplainer(Explainer):
    def __init__(self, task: Any, backbone: Any, protocol: Any, settings: ExplainSettings, device: str = "cpu"):
        super().__init__(settings, device)
        self.task = task
        self.transform = task._transform(backbone, protocol.inputs.get("image_size"), False)
        self.mean = torch.tensor(backbone.data_config["mean"]).view(3, 1, 1)
        self.std = torch.tensor(backbone.data_config["std"]).view(3, 1, 1)
        source = getattr(backbone, "feature_map_source", "the last convolutional stage")
        self.method = (f"Grad-CAM of the class logit on {source} (captum LayerGradCam), bilinearly "
                       "upsampled to the input")
        self.unit = "image cell under one position of the final feature grid"
        self._shapes: dict[tuple[int, ...], tuple[int, int]] = {}

    def items(self, model: Any, examples: list[Any]) -> list[Item]:
        labels = list(self.task.label_names)
        items = []
        for example in examples:
            pixels = self.transform(example.input)[None].to(self.device)
            with torch.no_grad():
                target = int(model.logits({"pixel_values": pixels}).argmax(-1)[0])
            rows, cols = self._map_shape(model, pixels)
            items.append(Item(example.id, target, labels[target], {"pixel_values": pixels},
                              [f"cell r{r} c{c}" for r in range(rows) for c in range(cols)],
                              {"group": labels[target], "reference": example.target,
                               "cells": cell_masks(pixels.shape[-2], pixels.shape[-1], rows, cols).to(self.device)}))
        return items

    def _map_shape(self, model: Any, pixels: torch.Tensor) -> tuple[int, int]:
        """The spatial size of the last stage's feature map for this input size (e.g. 2 x 2 at 64 px)."""
        key = tuple(pixels.shape[-2:])
        if key not in self._shapes:
            captured: list[tuple[int, int]] = []
            hook = model.backbone.feature_map.register_forward_hook(
                lambda _m, _i, out: captured.append(tuple(out.shape[-2:])))
            try:
                with torch.no_grad():
                    model.logits({"pixel_values": pixels})
            finally:
                hook.remove()
            self._shapes[key] = captured[0]
        return self._shapes[key]

    def _probs(self, model: Any, pixels: torch.Tensor) -> torch.Tensor:
        return model.logits({"pixel_values": pixels}).float().softmax(-1)

    def attribute(self, model: Any, item: Item) -> Attribution:
        from captum.attr import LayerAttribution, LayerGradCam

        pixels = item.inputs["pixel_values"]
        # Gradients of the class score (the logit), as Grad-CAM defines them: a softmax probability's
        # gradient vanishes on confident predictions and would leave an all-zero map.
        cam = LayerGradCam(lambda x: model.logits({"pixel_values": x}).float(), model.backbone.feature_map)
        # Units are the feature map's own cells, ranked by the signed map (before Grad-CAM's ReLU, which only
        # serves display: it would tie every cell of an all-negative map); the heat map shown is ReLU'd.
        raw = cam.attribute(pixels, target=item.target, relu_attributions=False).detach().float()
        heat = LayerAttribution.interpolate(raw.clamp(min=0), tuple(pixels.shape[-2:]), "bilinear")[0, 0]
        return Attribution(raw.flatten().cpu().numpy(), heat.cpu().numpy())

    def scores(self, model: Any, item: Item, keep: np.ndarray) -> np.ndarray:
        pixels = item.inputs["pixel_values"]
        cells = item.display["cells"]
        kept = torch.as_tensor(keep, dtype=torch.float32, device=pixels.device) @ cells.flatten(1)
        kept = kept.view(len(keep), 1, *pixels.shape[-2:])
        variants = pixels * kept + self.background(pixels) * (1 - kept)
        return batched_scores(lambda v: self._probs(model, v)[:, item.target], variants)

    @staticmethod
    def background(pixels: torch.Tensor) -> torch.Tensor:
        """What a removed cell becomes: the image's per-channel median colour (black for Fashion-MNIST's
        background, a neutral tone for natural images), so removal does not paint a new object."""
        return pixels[0].flatten(1).median(1).values.view(1, -1, 1, 1)

    def picture(self, item: Item) -> np.ndarray:
        """The model's input as an H x W x 3 image in [0, 1]."""
        image = item.inputs["pixel_values"][0].cpu() * self.std + self.mean
        return image.clamp(0, 1).permute(1, 2, 0).numpy()

    def item_record(self, item: Item, attribution: Attribution) -> dict[str, Any]:
        heat = attribution.map if attribution.map is not None else np.zeros((1, 1))
        return super().item_record(item, attribution) | {
            "heat_map": np.round(resize_map(heat, MAP_SIZE), 5).tolist()}

    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]:
        """Per predicted class: the average Grad-CAM (each map scaled to max 1) and where its mass lies."""
        maps: dict[str, list[np.ndarray]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            heat = resize_map(attribution.map, MAP_SIZE)
            maps[item.label].append(heat / heat.max() if heat.max() > 0 else heat)
        groups = {}
        for label, stack in sorted(maps.items()):
            mean = np.mean(stack, axis=0)
            total = mean.sum()
            rows, cols = np.indices(mean.shape)
            centre = ([float((rows * mean).sum() / total / MAP_SIZE), float((cols * mean).sum() / total / MAP_SIZE)]
                      if total > 0 else None)
            groups[label] = {"items": len(stack), "mean_heat_map": np.round(mean, 4).tolist(),
                             "centre_of_mass": centre,  # (row, column) as fractions of the image
                             "coverage": round(float((mean > 0.5).mean()), 4)}  # area above half the peak
        return {"kind": "class_heat_maps", "by": "predicted class", "groups": groups}

    def visuals(self, items: list[Item], attributions: list[Attribution], out: Path) -> list[dict[str, Any]]:
        shown = []
        for i, (item, attribution) in enumerate(list(zip(items, attributions, strict=True))[:self.settings.visuals]):
            name = f"gradcam-{i}.png"
            heat_overlay_figure(self.picture(item), attribution.map, f"{item.label} (true {item.display['reference']})",
                                out / name)
            shown.append({"kind": "image", "file": name, "id": item.id, "label": item.label,
                          "caption": "Grad-CAM heat map over the model's input"})
        by_class: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            by_class[item.label].append((self.picture(item), attribution.map))
        class_average_figure(by_class, out / "gradcam-classes.png")
        shown.append({"kind": "image", "file": "gradcam-classes.png", "id": "", "label": "class averages",
                      "caption": "class-average Grad-CAM (per predicted class, over the explained images)"})
        return shown
