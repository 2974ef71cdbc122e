"""Frozen-feature cache: compute a frozen backbone's features once, reuse them across runs.

With `--adapt frozen` the backbone is a fixed function, so its output on a dataset depends only on
(backbone + revision, the backbone-side preprocessing, the data). For heads that pool by masked mean
(every classification head) the learned layer mix commutes with the mean, so caching each layer's
masked mean, [examples, layers, dim], is exact: later runs (other seeds, learning rates, heads) train
on it directly. Files are safetensors, written atomically; a corrupt or mismatched file is recomputed.
Each file also holds the seconds its features took to compute (`compute_s`), so a run on cached features
can report what they cost (reports charge it; files written before this hold none).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.backbones.pooling import masked_mean
from harness.fingerprints import cache_root
from harness.store import canonical_json, config_hash, write_atomic

log = logging.getLogger("harness")
FORMAT = "pooled-layers-v1"


def default_cache_dir() -> Path:
    return cache_root()


class FeatureCache:
    """Pooled per-layer features for one (backbone, preprocessing, data) identity, keyed per split. The
    identity holds the data's content fingerprint (harness.fingerprints): changed data, even with the same
    file names and sizes, is a new key, so old features are never reused for it."""

    def __init__(self, identity: dict[str, Any], root: Path | None = None):
        self.identity = identity
        self.root = (root or default_cache_dir()) / "features"
        self.hits: dict[str, bool] = {}
        # per split: the seconds its features took to compute (now, or when the cached file was written); None
        # for files written before that was recorded
        self.compute_seconds: dict[str, float | None] = {}
        self._loaded: dict[Path, tuple[torch.Tensor, float | None]] = {}

    def path(self, split: str, limit: int | None) -> Path:
        key = config_hash({"format": FORMAT, **self.identity, "split": split, "limit": limit})
        return self.root / key[:2] / f"{key}.safetensors"

    def lookup(self, split: str, limit: int | None, ids: list[str]) -> torch.Tensor | None:
        """The cached features of these examples, or None."""
        path = self.path(split, limit)
        if path not in self._loaded:
            cached = self._read(path, ids, canonical_json(self.identity))
            if cached is None:
                return None
            self._loaded[path] = cached
        return self._loaded[path][0]

    def get(self, split: str, limit: int | None, ids: list[str], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        path = self.path(split, limit)
        cached = self.lookup(split, limit, ids)
        self.hits[split] = cached is not None
        if cached is not None:
            log.info("%s features: reused from the cache (%s)", split, path)
            self.compute_seconds[split] = self._loaded[path][1]
            return cached
        started = time.perf_counter()
        features = compute()
        seconds = round(time.perf_counter() - started, 3)
        self.compute_seconds[split] = seconds
        from safetensors.torch import save

        metadata = {"ids": json.dumps(ids), "identity": canonical_json(self.identity), "format": FORMAT,
                    "compute_s": repr(seconds)}
        write_atomic(path, save({"features": features.contiguous()}, metadata=metadata))
        log.info("%s features: computed and cached (%s)", split, path)
        return features

    @staticmethod
    def _read(path: Path, ids: list[str], identity: str) -> tuple[torch.Tensor, float | None] | None:
        """The file's features and their compute seconds (None when the file predates recording them)."""
        if not path.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {}
                if json.loads(metadata.get("ids", "[]")) != ids or metadata.get("identity") != identity:
                    return None  # another identity's file (or other examples): recomputed, never trusted
                seconds = float(metadata["compute_s"]) if "compute_s" in metadata else None
                return fh.get_tensor("features"), seconds
        except Exception as exc:  # a damaged cache file is recomputed, never trusted
            log.warning("ignoring unreadable feature cache %s: %s", path, exc)
            return None


@torch.no_grad()
def pooled_layer_features(task: Any, backbone: torch.nn.Module, examples: list[Any], protocol: Any,
                          device: torch.device, progress: Any, label: str) -> torch.Tensor:
    """[examples, layers, dim]: the masked mean of every hidden state, in eval mode, in fp32."""
    from accelerate.utils import send_to_device

    backbone.eval()
    chunks = []
    size = protocol.eval_batch_size
    with progress.phase(f"{label} features", (len(examples) + size - 1) // size) as update:
        for start in range(0, len(examples), size):
            rows = examples[start:start + size]
            inputs = send_to_device(task.collate_inputs(rows, backbone, protocol, train=False), device)
            features = backbone(**inputs)
            pooled = torch.stack([masked_mean(h.float(), features.mask) for h in features.hidden_states], dim=1)
            chunks.append(pooled.cpu())
            update()
    return torch.cat(chunks) if chunks else torch.empty(0)
