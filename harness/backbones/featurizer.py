"""Featurizers pick what the head sees from a backbone's hidden states (SUPERB/s3prl's split)."""

from __future__ import annotations

import torch
from torch import nn


class LastLayer(nn.Module):
    needs_all_layers = False  # the backbone need not return its other hidden states

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return hidden_states[-1]


class WeightedLayerSum(nn.Module):
    """A learned softmax-weighted mix of all layers: what frozen probes of speech/text models use."""

    needs_all_layers = True

    def __init__(self, num_states: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_states))

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if len(hidden_states) != self.logits.numel():
            raise ValueError(f"expected {self.logits.numel()} hidden states, got {len(hidden_states)}")
        weights = torch.softmax(self.logits, dim=0).to(hidden_states[0].dtype)
        return torch.einsum("l,lbtd->btd", weights, torch.stack(hidden_states))

    def layer_weights(self) -> list[float]:
        return torch.softmax(self.logits.detach().float(), dim=0).tolist()


def build_featurizer(layer_mix: str, num_states: int) -> nn.Module:
    """"weighted": a learned mix of every layer (what probes use); anything else: the last layer only."""
    return WeightedLayerSum(num_states) if layer_mix == "weighted" else LastLayer()
