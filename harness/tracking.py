"""Experiment trackers: a run's configuration, training loss, dev metrics, test metrics and timing sent to
TensorBoard, MLflow or Weights & Biases through accelerate's tracker classes (`accelerate.tracking`).

`harness run ... --log-with tensorboard,mlflow` asks for them (also for leaderboard cells); each run is one
tracker run named by its harness run id and tagged with task, backbone, adaptation, protocol and seed. The
trackers are optional extras (`pip install 'harness[trackers]'`); asking for one that is not installed is
one error line before anything runs.

The request travels in the environment (HARNESS_LOG_WITH, HARNESS_TRACKING_DIR), as accelerate's own
settings do, so every process that executes a run (a DDP rank, a Ray worker) sees it; only the process that
records the run logs. Inside a run, the training loop reaches the open trackers through `current()` (a
context variable), so nothing else in the loop changes: with no tracker it is a no-op.

Where things go: TensorBoard event files under `--tracking-dir` (default `./tracking`), one folder per run id;
MLflow wherever MLFLOW_TRACKING_URI points (experiment `harness`, or MLFLOW_EXPERIMENT_NAME); W&B to project
`harness` (or WANDB_PROJECT), offline when WANDB_MODE=offline. Tracker failures never fail a run: they are
logged as warnings, because the run record, not the tracker, is the result.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from harness.errors import UsageError

log = logging.getLogger("harness")
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # name -> module it needs
ENV_TRACKERS, ENV_DIR = "HARNESS_LOG_WITH", "HARNESS_TRACKING_DIR"
DEFAULT_DIR = "tracking"
PROJECT = "harness"
_current: contextvars.ContextVar[RunTrackers | None] = contextvars.ContextVar("harness_trackers", default=None)


def parse_trackers(text: str | Sequence[str] | None) -> list[str]:
    """Tracker names from "a,b" (or a list), checked: known and installed. UsageError otherwise."""
    if not text:
        return []
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    for name in names:
        if name not in TRACKERS:
            raise UsageError(f"unknown tracker '{name}' (use {', '.join(TRACKERS)})")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UsageError(f"--log-with {name}: {TRACKERS[name]} is not installed "
                             f"(pip install 'harness[trackers]')")
    if len(set(names)) != len(names):
        raise UsageError(f"--log-with names a tracker twice: {','.join(names)}")
    return names


@contextlib.contextmanager
def requested(names: Sequence[str], directory: str | None = None) -> Iterator[None]:
    """Ask every run started inside (in this process or its children) to log to `names`."""
    saved = {key: os.environ.get(key) for key in (ENV_TRACKERS, ENV_DIR)}
    if names:
        os.environ[ENV_TRACKERS] = ",".join(names)
        os.environ[ENV_DIR] = os.path.abspath(directory or DEFAULT_DIR)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def forwarded_environment() -> dict[str, str]:
    """The tracker request, for processes that do not inherit this environment (remote Ray workers)."""
    return {key: os.environ[key] for key in (ENV_TRACKERS, ENV_DIR) if os.environ.get(key)}


def current() -> RunTrackers | None:
    """The trackers of the run being trained in this context, or None."""
    return _current.get()


@contextlib.contextmanager
def tracking(run_id: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> Iterator[RunTrackers | None]:
    """Open the requested trackers (HARNESS_LOG_WITH) for one run; close them after. Yields None when none."""
    names = [n for n in os.environ.get(ENV_TRACKERS, "").split(",") if n]
    if not names:
        yield None
        return
    trackers = RunTrackers(names, run_id, config, tags, os.environ.get(ENV_DIR) or os.path.abspath(DEFAULT_DIR))
    token = _current.set(trackers)
    try:
        yield trackers
    finally:
        _current.reset(token)
        trackers.finish()


class RunTrackers:
    """The accelerate trackers of one run, behind calls that never raise."""

    def __init__(self, names: Sequence[str], run_id: str, config: Mapping[str, Any], tags: Mapping[str, str],
                 directory: str) -> None:
        self.trackers: list[Any] = []
        for name in names:
            with self._guard(name, "start"):
                tracker = _make(name, run_id, tags, directory)
                tracker.start()
                tracker.store_init_configuration(flat_config(config) | {"run_id": run_id} | dict(tags))
                self.trackers.append(tracker)

    def log(self, values: Mapping[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        for tracker in self.trackers:
            with self._guard(tracker.name, "log"):
                tracker.log(clean, step=step)

    def finish(self) -> None:
        for tracker in self.trackers:
            with self._guard(tracker.name, "finish"):
                tracker.finish()
        self.trackers = []

    @staticmethod
    @contextlib.contextmanager
    def _guard(name: str, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # a tracker's failure is reported, never the run's
            log.warning("tracker %s: %s failed (%s: %s); the run goes on", name, what, type(exc).__name__, exc)


def _make(name: str, run_id: str, tags: Mapping[str, str], directory: str) -> Any:
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    if name == "tensorboard":
        return TensorBoardTracker(run_name=run_id, logging_dir=directory)
    if name == "mlflow":
        return MLflowTracker(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT), run_name=run_id,
                             tags=dict(tags))
    return WandBTracker(run_name=os.environ.get("WANDB_PROJECT", PROJECT), name=run_id, tags=list(tags.values()),
                        dir=directory)


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"protocol.lr": 1e-4, ...}: nested settings flattened, values as the trackers take them (bool, int,
    float, str; anything else as its text)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flat_config(value, f"{name}.")
        elif isinstance(value, bool | int | float | str) or value is None:
            flat[name] = "none" if value is None else value
        else:
            flat[name] = str(value)
    return flat


def run_tags(plan: Any) -> dict[str, str]:
    return {"task": plan.task.spec.name, "backbone": plan.backbone.name, "adapt": str(plan.adaptation),
            "protocol": plan.protocol.name, "seed": str(plan.seed)}
