"""Picking an executor from the command line's settings, with one-line usage errors for settings that do
not fit it. The local executor needs nothing beyond the harness; the Ray executor needs `harness[ray]`."""

from __future__ import annotations

from harness.errors import UsageError
from harness.executors.base import Executor

EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")  # as training.train's (imported lazily here: it imports torch)


def make_executor(name: str = "local", device: str = "auto", address: str | None = None,
                  gpus_per_run: float | None = None, cpus_per_run: float | None = None,
                  max_parallel: int | None = None, max_retries: int | None = None) -> Executor:
    """The executor `name` ("local" or "ray") with its settings; settings only Ray takes are refused for local."""
    ray_only = {"--address": address, "--gpus-per-run": gpus_per_run, "--cpus-per-run": cpus_per_run,
                "--max-parallel": max_parallel, "--max-retries": max_retries}
    if name == "local":
        given = [flag for flag, value in ray_only.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only for --executor ray "
                             "(the local executor runs one cell at a time, in this process)")
        from harness.executors.local import LocalExecutor
        from harness.training.train import resolve_device

        return LocalExecutor(resolve_device(device))
    if name != "ray":
        raise UsageError(f"unknown executor '{name}' (use {', '.join(EXECUTORS)})")
    if device not in DEVICES:
        raise UsageError(f"invalid device '{device}' (use {', '.join(DEVICES)})")
    if device == "cpu" and gpus_per_run:
        raise UsageError(f"--device cpu and --gpus-per-run {gpus_per_run:g} contradict each other")
    for flag, value, low in (("--gpus-per-run", gpus_per_run, 0), ("--max-retries", max_retries, 0),
                             ("--cpus-per-run", cpus_per_run, 1e-9), ("--max-parallel", max_parallel, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be {'at least 1' if low == 1 else 'positive' if low else 'at least 0'}, "
                             f"not {value:g}")
    if address is not None and not address.strip():
        raise UsageError("--address needs a Ray cluster address (e.g. auto, or HEAD_IP:6379)")
    from harness.executors.ray_executor import RayExecutor

    return RayExecutor(address, gpus_per_run, 1.0 if cpus_per_run is None else cpus_per_run, max_parallel,
                       2 if max_retries is None else max_retries, device)
