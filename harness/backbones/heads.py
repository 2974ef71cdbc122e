"""Task heads. Each takes the featurizer's [batch, length, dim] output and the mask."""

from __future__ import annotations

import torch
from torch import nn

from harness.backbones.pooling import masked_mean


class TokenClassificationHead(nn.Module):
    def __init__(self, feature_dim: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_labels)

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(sequence))  # [batch, length, labels]


class SequenceClassificationHead(nn.Module):
    """Masked mean pooling, then a linear classifier (mean pooling is how MiniLM/MPNet were trained)."""

    def __init__(self, feature_dim: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_labels)

    def forward(self, sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(masked_mean(sequence, mask)))  # [batch, labels]
