"""Frozen frame encoders see each frame once, and image runs go channels-last on CPU: what is encoded, what is
reused, that the answers equal direct encoding, and that the configuration says so (run ids never mix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.training.frame_memo import FrameFeatureMemo


class CountingEncoder:
    """A per-row encoder that remembers every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        self.batches.append(frames.clone())
        return torch.stack([frames.flatten(1).float().sum(1), frames.flatten(1).float().amax(1)], dim=1)


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, 4, 3), generator=generator).float()


def test_each_distinct_frame_is_encoded_once_in_order_of_first_appearance() -> None:
    frames = _frames(5)
    batch = frames[[0, 1, 1, 2, 0, 3, 4, 4]]  # overlapping 2-frame stacks repeat frames
    memo, encoder = FrameFeatureMemo(), CountingEncoder()
    out = memo.features(batch, encoder)
    assert len(encoder.batches) == 1 and torch.equal(encoder.batches[0], frames)
    assert torch.equal(out, CountingEncoder()(batch))
    assert (memo.encoded, memo.reused, len(memo)) == (5, 3, 5)

    again = memo.features(batch[[7, 3]], encoder)  # all seen: no encoder call
    assert len(encoder.batches) == 1 and torch.equal(again, out[[7, 3]])
    assert memo.reused == 5

    mixed = torch.cat([frames[:2], _frames(2, seed=1)])
    memo.features(mixed, encoder)  # only the two new frames are encoded
    assert torch.equal(encoder.batches[-1], mixed[2:])
    assert (memo.encoded, memo.reused) == (7, 7)


def test_least_recently_used_frames_are_dropped_at_capacity() -> None:
    frames = _frames(4)
    memo, encoder = FrameFeatureMemo(capacity=3), CountingEncoder()
    memo.features(frames[:3], encoder)
    memo.features(frames[[0]], encoder)  # 0 is now the most recent; 1 the least
    memo.features(frames[[3]], encoder)  # evicts 1
    assert len(memo) == 3
    memo.features(frames[[0, 2, 3]], encoder)
    assert len(encoder.batches) == 2  # all three still there
    memo.features(frames[[1]], encoder)
    assert len(encoder.batches) == 3 and torch.equal(encoder.batches[-1], frames[[1]])
    with pytest.raises(ValueError, match="capacity"):
        FrameFeatureMemo(capacity=0)


@pytest.mark.parametrize("change", [1.0, 0.25])  # a fraction too: frames are never compared after rounding
def test_frames_differing_in_one_value_are_different_frames(change: float) -> None:
    frames = _frames(1).repeat(2, 1, 1, 1)
    frames[1, 3, 3, 2] = (frames[1, 3, 3, 2] + change) % 256
    memo, encoder = FrameFeatureMemo(), CountingEncoder()
    out = memo.features(frames, encoder)
    assert memo.encoded == 2 and not torch.equal(out[0], out[1])


def _extractor(frozen: bool):
    import gymnasium as gym

    from harness.backbones.spec import BACKBONES
    from harness.training.reinforcement import BackboneExtractor

    space = gym.spaces.Box(0, 255, (2, 32, 32, 3), np.uint8)
    torch.manual_seed(0)
    extractor = BackboneExtractor(space, lambda: BACKBONES.get("efficientnet-lite0").build(), frozen=frozen,
                                  pixels=True, pretrained=True, features_dim=16)
    extractor.finish_setup()
    return extractor


def _stacked_observations() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (5, 32, 32, 3), generator=generator).float()
    return torch.stack([frames[i:i + 2] for i in range(4)])  # 4 observations, 8 frames, 5 distinct


def test_frozen_pixel_extractor_encodes_each_frame_once_and_agrees_with_direct_encoding() -> None:
    extractor = _extractor(frozen=True)
    stem = next(p for p in extractor.backbone.parameters() if p.ndim == 4)  # a 3x3 convolution's weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    observations = _stacked_observations()
    out = extractor(observations)
    assert (extractor.memo.encoded, extractor.memo.reused) == (5, 3)
    assert torch.equal(extractor(observations), out) and extractor.memo.encoded == 5  # a PPO epoch: all reused
    with torch.no_grad():
        direct = extractor.project(extractor._encode(observations.flatten(0, 1)).reshape(4, -1))
    torch.testing.assert_close(out, direct, rtol=1e-4, atol=1e-5)  # other batches, same features up to rounding

    twin = _extractor(frozen=True)  # the same frames in the same order: the same answers, bit for bit
    assert torch.equal(twin(observations), out)

    extractor.backbone.load_state_dict(extractor.backbone.state_dict())  # new weights: nothing kept is valid
    assert len(extractor.memo) == 0


def test_trained_pixel_encoders_have_no_memo() -> None:
    extractor = _extractor(frozen=False)
    assert extractor.memo is None
    out = extractor(_stacked_observations())
    out.sum().backward()
    assert any(p.grad is not None for p in extractor.backbone.parameters())


def test_cpu_image_runs_go_channels_last_except_heads_on_cached_features() -> None:
    from harness.task import TASKS
    from harness.training.devices import device_settings

    protocol = TASKS.get("fashion-mnist").protocols["smoke"]
    assert device_settings("cpu", protocol, "image").channels_last
    assert not device_settings("cpu", protocol, "image", pooled_features=True).channels_last
    assert not device_settings("cpu", protocol, "text").channels_last


@pytest.mark.parametrize(("task", "adapt", "numerics"), [
    ("fashion-mnist", None, {"memory_format": "channels-last"}),
    ("fashion-mnist", "frozen", None),  # the head on cached features: computed as before
    ("cartpole-pixels", None, {"memory_format": "channels-last", "frozen_frames": "encoded once"}),
    ("cartpole-pixels", "full", {"memory_format": "channels-last"}),
    ("ner", None, None),
    ("cartpole", None, None),
    ("keywords", None, None),
])
def test_the_configuration_records_numerics_only_where_they_changed(task: str, adapt: str | None,
                                                                    numerics: dict | None) -> None:
    from harness.planning import plan_runs

    plan = plan_runs(task, protocol="smoke", adapt=adapt)[0]
    assert plan.config.get("numerics") == numerics
    assert ("numerics" in plan.config) == (numerics is not None)
