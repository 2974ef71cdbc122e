"""Text backbone adapter over any transformers encoder (AutoModel + fast AutoTokenizer)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from harness.assets import ResolvedAsset
from harness.backbones.pooling import masked_mean
from harness.backbones.spec import BackboneSpec, Features
from harness.errors import UsageError, first_line


class TextBackbone(nn.Module):
    """Wraps a transformers encoder; forward returns every hidden state (s3prl-style upstream)."""

    def __init__(self, spec: BackboneSpec, model: nn.Module, tokenizer: Any):
        super().__init__()
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.feature_dim: int = model.config.hidden_size
        self.num_layers: int = model.config.num_hidden_layers
        self.num_hidden_states: int = self.num_layers + 1  # embeddings + every layer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, all_hidden_states: bool = True,
                **_: Any) -> Features:
        """`all_hidden_states=False` (the featurizer reads the last layer only) returns just the last one."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=all_hidden_states)
        hidden = tuple(out.hidden_states) if all_hidden_states else (out.last_hidden_state,)
        return Features(sequence=hidden[-1], hidden_states=hidden, mask=attention_mask,
                        pooled=masked_mean(hidden[-1], attention_mask))

    def layer_groups(self) -> list[nn.Module]:
        """Bottom-to-top trainable groups: embeddings, then each encoder layer. partial:N trains the top N."""
        return [self.model.get_input_embeddings(), *_encoder_layers(self.model, self.num_layers)]


def _encoder_layers(model: nn.Module, num_layers: int) -> list[nn.Module]:
    # Encoders differ in attribute names (encoder.layer, layers, transformer.layer, ...): take the
    # first ModuleList that holds exactly num_hidden_layers blocks.
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return list(module)
    raise UsageError(f"cannot find the {num_layers} encoder layers of {type(model).__name__} (partial:N needs them)")


def build_text_backbone(spec: BackboneSpec, asset: ResolvedAsset) -> TextBackbone:
    """Any transformers encoder folder with a fast tokenizer (token tasks align words through it)."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(asset.path))
        model = AutoModel.from_pretrained(str(asset.path))
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"backbone '{spec.name}' at {asset.path} could not be loaded: {first_line(exc)}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError(f"backbone '{spec.name}' has no fast tokenizer (word alignment needs one)")
    return TextBackbone(spec, model, tokenizer)
