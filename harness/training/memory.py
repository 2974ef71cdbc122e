"""Each run's own peak memory, not the process's.

A leaderboard runs many cells in one process: the process's lifetime maximum RSS would give every later
cell the peak of the largest earlier one. On Linux, writing 5 to /proc/self/clear_refs resets the
process's high-water mark (VmHWM) to its current RSS, so the mark read at the end of a run is that run's
peak (what the process held when it started, plus what the run added at its worst). On CUDA the
allocator's peak counter is reset instead.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def reset_peak_memory(device: str) -> str:
    """Start measuring a run's peak; returns what the peak will cover: "run" or "process" (no reset here)."""
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return "run"
    try:
        CLEAR_REFS.write_text("5")
        return "run"
    except OSError:  # not Linux, or /proc read-only: the lifetime maximum is all there is
        return "process"


def peak_memory_mb(device: str) -> float:
    """The peak since `reset_peak_memory`: CUDA allocated memory, or this process's resident set (MiB)."""
    if device == "cuda" and torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
