"""Audio backbone adapter: the Whisper encoder (transformers' WhisperEncoder) on log-mel features.

Weights come from the packaged CTranslate2 Whisper models (found by `whisper_packaged`, converted by
`whisper_convert`) or a transformers checkpoint (hub id or folder).
Short clips are never padded to Whisper's 30 s window: `configure()` cuts the positional embedding
to the clip's frame count (a new module, not only its weight, so the encoder's length check agrees)
and the feature extractor is sized to the clip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import WhisperFeatureExtractor, WhisperModel
from transformers.utils import logging as hf_logging

from harness.assets import ResolvedAsset
from harness.backbones.spec import BackboneSpec, Features
from harness.backbones.whisper_convert import convert_whisper
from harness.backbones.whisper_packaged import packaged_whisper_files
from harness.errors import UsageError

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # Whisper: 10 ms frames


class WhisperEncoderBackbone(nn.Module):
    """transformers' WhisperEncoder fitted to short clips; forward returns every layer's hidden states."""

    def __init__(self, spec: BackboneSpec, encoder: nn.Module):
        super().__init__()
        self.spec = spec
        self.encoder = encoder
        self.feature_dim: int = encoder.config.d_model
        self.num_layers: int = encoder.config.encoder_layers
        self.num_hidden_states: int = self.num_layers + 1
        self.n_mels: int = encoder.config.num_mel_bins
        self.sampling_rate = SAMPLE_RATE
        # The full sinusoidal table, kept so the encoder can be re-fitted to another clip length.
        self.register_buffer("_positions", encoder.embed_positions.weight.detach().clone(), persistent=False)
        self.clip_seconds = 30.0
        self._extractor: Any = None
        self.configure({})

    def configure(self, inputs: Mapping[str, Any]) -> None:
        """Fit the encoder and the feature extractor to `clip_seconds` (default 1.0 s)."""
        seconds = float(inputs.get("clip_seconds", 1.0))
        frames = 2 * math.ceil(seconds * SAMPLE_RATE / HOP_LENGTH / 2)  # even: the second conv has stride 2
        positions = frames // 2
        if positions > self._positions.shape[0]:
            raise UsageError(f"clip_seconds {seconds} is longer than Whisper's 30 s window")
        embed = nn.Embedding(positions, self.feature_dim)
        embed.weight.data.copy_(self._positions[:positions])
        embed.weight.requires_grad_(False)  # sinusoidal positions are not trained in Whisper
        self.encoder.embed_positions = embed
        self.encoder.config.max_source_positions = positions
        extractor = WhisperFeatureExtractor(feature_size=self.n_mels, sampling_rate=SAMPLE_RATE,
                                            hop_length=HOP_LENGTH, chunk_length=max(1, math.ceil(seconds)))
        extractor.n_samples = frames * HOP_LENGTH
        extractor.nb_max_frames = frames
        self._extractor = extractor
        self.clip_seconds = seconds

    def log_mel(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """[batch, n_mels, frames] Whisper log-mel features of 16 kHz mono clips, padded or cut to the clip length."""
        out = self._extractor(waveforms, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding="max_length",
                              max_length=self._extractor.n_samples, truncation=True)
        return out["input_features"]

    def forward(self, input_features: torch.Tensor, all_hidden_states: bool = True, **_: Any) -> Features:
        """`all_hidden_states=False` (the featurizer reads the last layer only) returns just the last one."""
        out = self.encoder(input_features.to(self._positions.dtype), output_hidden_states=all_hidden_states)
        hidden = tuple(out.hidden_states) if all_hidden_states else (out.last_hidden_state,)
        mask = torch.ones(hidden[-1].shape[:2], dtype=torch.long, device=hidden[-1].device)
        return Features(sequence=hidden[-1], hidden_states=hidden, mask=mask, pooled=hidden[-1].mean(1))

    def layer_groups(self) -> list[nn.Module]:
        """Bottom-to-top trainable groups: the conv stem, each layer, the last layer with the final norm."""
        layers = list(self.encoder.layers)
        stem = nn.ModuleList([self.encoder.conv1, self.encoder.conv2])
        return [stem, *layers[:-1], nn.ModuleList([layers[-1], self.encoder.layer_norm])]


def build_packaged_whisper(spec: BackboneSpec, asset: ResolvedAsset) -> WhisperEncoderBackbone:
    """A packaged CTranslate2 Whisper (asset.path = the package's model folder); the variant picks the files."""
    parts, _ = packaged_whisper_files(spec.variant or "tiny.en")
    model = convert_whisper(parts)
    return WhisperEncoderBackbone(spec, model.model.encoder)


def build_hf_whisper(spec: BackboneSpec, asset: ResolvedAsset) -> WhisperEncoderBackbone:
    """A transformers Whisper checkpoint (hub id or local folder): only its encoder is kept."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = WhisperModel.from_pretrained(str(asset.path))
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"backbone '{spec.name}' at {asset.path} is not a Whisper model: {exc}") from None
    return WhisperEncoderBackbone(spec, model.encoder)
