"""Each rendered frame through a frozen encoder once, not once per use.

A pixel-control agent sees every frame several times: in each stacked observation that holds it (2 with a
2-frame stack), when its rollout is collected, and again in every PPO epoch over that rollout (4 in
`cartpole-pixels`). With a frozen encoder the frame's features never change, so the memo keeps the pooled
features of the frames seen lately, keyed by a digest of the frame's exact bytes, and encodes only frames
it has not seen.
Measured on `cartpole-pixels` `quick`: the encoder took about 85% of training, most of it in PPO's epochs.

A frame's features are computed in the batch of new frames it arrived with instead of the batch of a
training step, so they can differ from a run without the memo by float rounding; runs record it in their
configuration (`planning.execution_numerics`), so the two never share a run id.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import torch

# Frames kept: a PPO update reuses only its own rollout (n_steps x n_envs observations: 256 in cartpole-pixels,
# about 300 distinct frames), so this holds many rollouts; at 1,280 features a frame it is about 21 MB (the keys
# are 16-byte digests, not the frames).
DEFAULT_CAPACITY = 4096


class FrameFeatureMemo:
    """Pooled features of frames by a digest of their bytes, least recently used dropped first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        if capacity < 1:
            raise ValueError(f"capacity must be positive, not {capacity}")
        self.capacity = capacity
        self._features: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.encoded = 0  # frames that went through the encoder (for tests and diagnostics)
        self.reused = 0  # frames answered without the encoder (seen before, or twice in one batch)

    def __len__(self) -> int:
        return len(self._features)

    def clear(self) -> None:
        self._features.clear()

    def features(self, frames: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """[N, ...] frames (any dtype, any device) -> [N, D] features, calling `encode` once on the frames not
        in the memo (each distinct frame once, in the order they first appear). Frames are the same only when
        every value is: the key is a digest of the exact bytes, never of a rounded copy."""
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest()
                for row in frames.detach().flatten(1).contiguous().cpu().numpy()]
        new_index: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._features and key not in new_index:
                new_index[key] = i
        fresh: dict[bytes, torch.Tensor] = {}
        if new_index:
            computed = encode(frames[list(new_index.values())])
            fresh = {key: row.clone() for key, row in zip(new_index, computed, strict=True)}
        rows = []
        for key in keys:
            row = fresh.get(key)
            if row is None:
                row = self._features[key]
                self._features.move_to_end(key)
            rows.append(row)
        self.encoded += len(fresh)
        self.reused += len(keys) - len(fresh)
        for key, row in fresh.items():
            self._features[key] = row
        while len(self._features) > self.capacity:
            self._features.popitem(last=False)
        return torch.stack(rows)
