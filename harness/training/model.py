"""Backbone + featurizer + head, with the adaptation mode applied."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.adaptation import Adaptation
from harness.backbones.featurizer import build_featurizer


class TaskModel(nn.Module):
    def __init__(self, backbone: nn.Module, featurizer: nn.Module, head: nn.Module, adaptation: Adaptation):
        super().__init__()
        self.backbone = backbone
        self.featurizer = featurizer
        self.head = head
        self.adaptation = adaptation
        apply_adaptation(backbone, adaptation)

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        if "pooled_layers" in inputs:  # cached frozen features: [batch, layers, dim], one position each
            pooled = inputs["pooled_layers"]
            hidden = tuple(pooled[:, i:i + 1, :] for i in range(pooled.shape[1]))
            mask = torch.ones(pooled.shape[0], 1, dtype=torch.long, device=pooled.device)
            return self.head(self.featurizer(hidden), mask)
        inputs = {**inputs, "all_hidden_states": self.featurizer.needs_all_layers}
        if self.adaptation.mode == "frozen":
            with torch.no_grad():
                features = self.backbone(**inputs)
        else:
            features = self.backbone(**inputs)
        return self.head(self.featurizer(features.hidden_states), features.mask)

    def logits(self, inputs: dict[str, Any]) -> torch.Tensor:
        """The same function as forward on raw inputs, but differentiable through the backbone even when it
        is frozen: what attribution methods (explain/) need."""
        features = self.backbone(**inputs, all_hidden_states=self.featurizer.needs_all_layers)
        return self.head(self.featurizer(features.hidden_states), features.mask)

    def train(self, mode: bool = True) -> TaskModel:
        super().train(mode)
        if self.adaptation.mode == "frozen":
            self.backbone.eval()  # a frozen backbone is a fixed function: no dropout noise
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights a run changes, detached on CPU: trained parameters (head, layer mix, trained backbone
        layers) and, unless the backbone is frozen (then always in eval mode), the backbone's buffers: batch-norm
        running statistics move in training mode even in layers whose parameters are frozen."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        if self.adaptation.mode != "frozen":
            names |= {f"backbone.{n}" for n, _ in self.backbone.named_buffers()}
        return {n: t.detach().to("cpu", copy=True) for n, t in self.state_dict().items() if n in names}


class CachedFeatureSource(nn.Module):
    """Stands in for a frozen backbone whose features are all in the feature cache: the run then
    never loads the backbone's weights. Calling it is a bug (batches carry the cached features)."""

    def __init__(self, feature_dim: int, num_layers: int, num_hidden_states: int):
        super().__init__()
        self.feature_dim = feature_dim
        self.num_layers = num_layers
        self.num_hidden_states = num_hidden_states

    def forward(self, **_: Any) -> Any:
        raise RuntimeError("features of this run come from the feature cache; the backbone was not loaded")

    def layer_groups(self) -> list[nn.Module]:
        return []


def apply_adaptation(backbone: nn.Module, adaptation: Adaptation) -> None:
    train_all = adaptation.mode == "full"
    for p in backbone.parameters():
        p.requires_grad_(train_all)
    if adaptation.mode == "partial":
        for group in backbone.layer_groups()[-adaptation.layers:]:
            for p in group.parameters():
                p.requires_grad_(True)


def build_task_model(task: Any, spec: Any, backbone: nn.Module, protocol: Any, adaptation: Adaptation) -> TaskModel:
    adaptation.check_layers(backbone.num_layers, spec.name)
    # the head first, straight after the caller seeded: its initial weights must not depend on whether the
    # backbone was loaded (configuring one may draw random numbers) or stood in for by the feature cache
    featurizer = build_featurizer(protocol.layer_mix, backbone.num_hidden_states)
    head = task.build_head(spec, backbone.feature_dim)
    if hasattr(backbone, "configure"):  # input-shape-dependent set-up, e.g. Whisper's positions for short clips
        backbone.configure(protocol.inputs)
    return TaskModel(backbone, featurizer, head, adaptation)
