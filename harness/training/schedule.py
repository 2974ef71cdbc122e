"""The learning-rate schedule of every supervised run: linear warm-up from 0, then linear decay to 0.

This is transformers' `get_linear_schedule_with_warmup`, built on torch's `LambdaLR` here (and tested to give
the same rate at every step) because importing transformers costs about a second in runs that never load it:
image, audio and cached frozen-feature runs.
"""

from __future__ import annotations

from functools import partial

import torch


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int,
                        total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per optimizer step: the rate rises linearly from 0 over `warmup_steps`, then
    falls linearly to 0 at `total_steps`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_factor, warmup=warmup_steps, total=total_steps))


def _factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))
