"""The Whisper encoder adapter on short clips: no padding to 30 s, positions cut to the clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.backbones.spec import BACKBONES
from harness.errors import UsageError


@pytest.fixture(scope="module")
def whisper():
    return BACKBONES.get("whisper-tiny-en").build()


def test_one_second_clips_use_100_frames_and_50_positions(whisper) -> None:
    whisper.configure({"clip_seconds": 1.0})
    clips = [np.sin(np.linspace(0, 200, 16000)).astype(np.float32) * 0.1, np.zeros(12000, dtype=np.float32)]
    mel = whisper.log_mel(clips)
    assert mel.shape == (2, 80, 100)
    with torch.no_grad():
        features = whisper(input_features=mel)
    assert features.sequence.shape == (2, 50, 384)
    assert len(features.hidden_states) == whisper.num_hidden_states == 5
    assert features.mask.shape == (2, 50)


def test_positions_are_a_prefix_of_whisper_table_and_refit(whisper) -> None:
    whisper.configure({"clip_seconds": 2.0})
    assert whisper.encoder.embed_positions.num_embeddings == 100
    assert torch.equal(whisper.encoder.embed_positions.weight, whisper._positions[:100])
    assert not whisper.encoder.embed_positions.weight.requires_grad
    whisper.configure({"clip_seconds": 1.0})
    assert whisper.encoder.embed_positions.num_embeddings == 50
    with pytest.raises(UsageError, match="longer than Whisper's 30 s window"):
        whisper.configure({"clip_seconds": 31.0})


def test_partial_adaptation_groups(whisper) -> None:
    groups = whisper.layer_groups()
    assert len(groups) == whisper.num_layers + 1
    assert whisper.encoder.layer_norm in list(groups[-1].modules())
