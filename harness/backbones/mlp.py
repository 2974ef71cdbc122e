"""A small MLP backbone for vector observations (control tasks), randomly initialised by design."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from harness.assets import ResolvedAsset
from harness.backbones.spec import BackboneSpec, Features
from harness.errors import UsageError

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLPBackbone(nn.Module):
    """obs -> Linear/act -> ... ; built by `configure` once the observation size is known."""

    def __init__(self, spec: BackboneSpec):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList()
        self.feature_dim = 0
        self.num_layers = 0
        self.num_hidden_states = 1

    def configure(self, inputs: Mapping[str, Any]) -> None:
        """Build the layers once the task gives the observation size and the protocol the widths."""
        obs_dim = int(inputs["obs_dim"])
        hidden = [int(h) for h in inputs.get("hidden", (64, 64))]
        activation = inputs.get("activation", "tanh")
        if activation not in ACTIVATIONS or not hidden:
            raise UsageError(f"mlp backbone: activation must be one of {sorted(ACTIVATIONS)} and hidden non-empty")
        sizes = [obs_dim, *hidden]
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(a, b), ACTIVATIONS[activation]())
                                    for a, b in itertools.pairwise(sizes))
        self.feature_dim = hidden[-1]
        self.num_layers = len(hidden)
        self.num_hidden_states = len(hidden) + 1

    def forward(self, observations: torch.Tensor, **_: Any) -> Features:
        states = [observations.flatten(1).float()]
        for layer in self.layers:
            states.append(layer(states[-1]))
        out = states[-1]
        mask = torch.ones(out.shape[0], 1, dtype=torch.long, device=out.device)
        return Features(sequence=out[:, None, :], hidden_states=tuple(s[:, None, :] for s in states[1:]),
                        mask=mask, pooled=out)

    def layer_groups(self) -> list[nn.Module]:
        return list(self.layers)


def build_mlp(spec: BackboneSpec, asset: ResolvedAsset) -> MLPBackbone:
    """An unconfigured MLP: its widths come from the task's protocol through `configure`."""
    return MLPBackbone(spec)
