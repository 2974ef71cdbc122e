"""How a supervised run uses its device: precision, and on CUDA the usual throughput settings.

On CUDA: bf16 autocast (unless the protocol asks for fp32), TF32 matmuls, the fused AdamW kernel, pinned
host memory with non-blocking copies, DataLoader worker processes for image and audio decoding, and
channels-last memory format for convolutional (image) backbones. On CPU: no workers (two cores are better
spent on the model), channels-last for image backbones as on CUDA, and bf16 autocast only when the protocol
asks for it (`precision = "bf16"`: fast on CPUs with AVX512-BF16 or AMX). What was used is recorded in the
run record's `execution` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate.utils import send_to_device

from harness.protocol import TrainingProtocol, channels_last_on_cpu

CUDA_SYNC_EVERY = 25  # steps between reading the loss back to the host on CUDA (each read is a sync)
DECODING_MODALITIES = ("image", "audio")  # inputs that take CPU work to decode and transform
# a fixed count, not one derived from the host's cores: random augmentations run in the workers, each seeded
# from the run's generator and its worker index, so the numbers must not depend on the machine
LOADER_WORKERS = 4


@dataclass(frozen=True)
class DeviceSettings:
    precision: str  # "bf16" (autocast) or "fp32"
    tf32: bool
    fused_adamw: bool
    pin_memory: bool
    loader_workers: int
    channels_last: bool
    sync_every: int
    threads: int | None = None  # torch threads for training and evaluation; None: the process's setting

    def describe(self) -> dict[str, Any]:
        """What the run record keeps of these settings (and the torch threads, which CPU numbers depend on)."""
        kept = {key: value for key, value in asdict(self).items() if key != "sync_every"}
        return kept | {"threads": self.threads or torch.get_num_threads()}

    def threads_for_loop(self) -> contextlib.AbstractContextManager[int]:
        """The torch thread count of this run's training and evaluation, restored afterwards."""
        return torch_threads(self.threads)

    @contextmanager
    def matmul_precision(self) -> Iterator[None]:
        """TF32 matmuls for the run when it uses them (CUDA, not fp32), and the process's setting back after."""
        before = torch.get_float32_matmul_precision()
        if self.tf32:
            torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)

    def loader_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"pin_memory": self.pin_memory, "num_workers": self.loader_workers}
        if self.loader_workers:
            options["persistent_workers"] = False  # loaders are per epoch/evaluation; workers exit with them
        return options

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model in the memory format the device runs fastest (channels-last for CNNs on CUDA)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def autocast(self, device: torch.device) -> torch.autocast:
        """bf16 autocast when the run's precision is bf16. torch's own context rather than accelerate's
        `mixed_precision`: accelerate fixes that once per process, and a leaderboard (or a precision check)
        runs fp32 and bf16 runs in one process."""
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def to_device(self, batch: Any, device: torch.device) -> Any:
        batch = send_to_device(batch, device, non_blocking=self.pin_memory)
        if self.channels_last and isinstance(batch, dict) and isinstance(batch.get("inputs"), dict):
            batch["inputs"] = {k: v.contiguous(memory_format=torch.channels_last)
                               if isinstance(v, torch.Tensor) and v.ndim == 4 else v
                               for k, v in batch["inputs"].items()}
        return batch


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with `threads` torch threads (None: as set), then restore the process's setting."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def resolve_precision(protocol: TrainingProtocol, device: str) -> str:
    """The protocol's precision on this device: "auto" is bf16 on CUDA and fp32 elsewhere."""
    if protocol.precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return protocol.precision


def device_settings(device: str, protocol: TrainingProtocol, modality: str | None,
                    pooled_features: bool = False) -> DeviceSettings:
    """The settings of a run on `device`. With `pooled_features` (a head trained on cached frozen features)
    there is nothing to decode, so no worker processes; and on CPU one torch thread, because the head's ops
    are so small that synchronising threads costs more than it saves (measured on keywords: 10x faster
    training on a loaded 2-core machine, the same scores)."""
    precision = resolve_precision(protocol, device)
    if device != "cuda":
        return DeviceSettings(precision, tf32=False, fused_adamw=False, pin_memory=False, loader_workers=0,
                              channels_last=channels_last_on_cpu(modality, pooled_features), sync_every=1,
                              threads=1 if pooled_features else None)
    workers = LOADER_WORKERS if modality in DECODING_MODALITIES and not pooled_features else 0
    # TF32 for what runs outside autocast; a run that asks for fp32 gets true fp32
    return DeviceSettings(precision, tf32=precision != "fp32", fused_adamw=True, pin_memory=True,
                          loader_workers=workers, channels_last=modality == "image", sync_every=CUDA_SYNC_EVERY)
