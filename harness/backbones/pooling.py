"""Pooling shared by backbones and heads."""

from __future__ import annotations

import torch


def masked_mean(sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where mask is 1: [batch, length, dim] -> [batch, dim]."""
    weights = mask.unsqueeze(-1).to(sequence.dtype)
    return (sequence * weights).sum(1) / weights.sum(1).clamp(min=1.0)
