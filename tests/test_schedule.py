from __future__ import annotations

import pytest
import torch

from harness.training.schedule import linear_warmup_decay


@pytest.mark.parametrize(("warmup", "total"), [(0, 1), (0, 10), (3, 10), (1, 1), (10, 10), (30, 450), (7, 5)])
def test_linear_warmup_decay_equals_transformers(warmup: int, total: int) -> None:
    """Written with torch's LambdaLR so runs need not import transformers; the rate must equal transformers'
    get_linear_schedule_with_warmup at every step, or runs made before and after would differ."""
    from transformers import get_linear_schedule_with_warmup

    rates = []
    for make in (linear_warmup_decay, get_linear_schedule_with_warmup):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
        scheduler = make(optimizer, warmup, total)
        seen = []
        for _ in range(total + 3):  # past the end the rate stays 0
            seen.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        rates.append(seen)
    assert rates[0] == rates[1]
    assert rates[0][0] == (0.0 if warmup else 3e-4)
