"""Preflight: what a planned run depends on, checked before its run directory is claimed.

Planning (harness.planning) fixes what a run is; this checks that it can start: the backbone folder holds a
model its adapter can build, every split loads (through the task's own `load_split`, with the protocol's
limits, so the check reads exactly what the run reads) and is not empty, every reference is one of the task's
labels, and audio clips given as files are 16-bit PCM WAV files. Bad input is one UsageError line (exit 2) and
leaves nothing in the runs directory; only what fails once training has started becomes a `failed` record.

Cost: the splits are loaded on the plan's own task object, which caches them, so the run does not load them
again; WAV headers (a few dozen bytes each) are read only for the clips the run uses: about 50 us a clip
(measured here: 20,000 clips in 1.0-1.3 s on a busy 2-core machine; threads were slower with a warm cache).
Callers skip runs whose complete result is stored, and `Preflight` remembers each distinct check, so a
leaderboard pays once per task's data and once per backbone folder.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.backbones.folders import check_folder
from harness.errors import UsageError, one_line
from harness.planning import RunPlan, data_dir_note, load_split
from harness.task import SPLITS, Task


def check_plans(plans: Iterable[RunPlan]) -> None:
    """UsageError (one line) for the first plan that cannot start; see the module docstring."""
    checker = Preflight()
    for plan in plans:
        checker.check(plan)


class Preflight:
    """Checks plans, remembering each backbone folder's and each data set's outcome."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], str | None] = {}

    def check(self, plan: RunPlan) -> None:
        """UsageError when `plan` cannot start."""
        problem = self.problem(plan)
        if problem is not None:
            raise UsageError(problem)

    def problem(self, plan: RunPlan) -> str | None:
        """Why `plan` cannot start, in one line; None when it can."""
        backbone = ("backbone", plan.backbone.modality, plan.backbone.local_dir)
        data = ("data", type(plan.task), plan.task.data_dir, plan.config.get("data"), _limits(plan.protocol))
        return (self._once(backbone, lambda: check_folder(plan.backbone))
                or self._once(data, lambda: check_data(plan.task, plan.protocol)))

    def _once(self, key: tuple[Any, ...], check: Any) -> str | None:
        if key not in self._seen:
            try:
                check()
                self._seen[key] = None
            except UsageError as exc:
                self._seen[key] = one_line(str(exc))
        return self._seen[key]


def _limits(protocol: Any) -> tuple[int | None, ...]:
    return tuple(getattr(protocol, f"{split}_limit", None) for split in SPLITS)


def check_data(task: Task, protocol: Any) -> None:
    """Every split the run trains and tests on loads and is not empty; audio files are WAV files."""
    if task.spec.modality == "control":  # environments, not data: nothing on disk to check
        return
    for split, limit in zip(SPLITS, _limits(protocol), strict=True):
        rows = load_split(task, split, limit)
        if not rows:
            raise UsageError(f"task '{task.spec.name}': the {split} split is empty{data_dir_note(task)}")
        check_labels(task, split, rows)
        if task.spec.modality == "audio":
            check_wav_files([row.input for row in rows if isinstance(row.input, str | Path)])


def check_labels(task: Task, split: str, rows: Sequence[Any]) -> None:
    """Every reference is one of the task's labels (a tag sequence: every tag), named with the example and the
    label list before any training, not as a KeyError at the first batch."""
    known = set(task.labels)
    if not known:
        return
    for row in rows:
        target = row.target
        for label in target if isinstance(target, list | tuple) else (target,):
            if label not in known:
                raise UsageError(one_line(f"task '{task.spec.name}': label {label!r} of example '{row.id}' "
                                          f"({split} split) is not in label_names {list(task.labels)}"
                                          f"{data_dir_note(task)}"))


def check_wav_files(paths: Sequence[str | Path]) -> None:
    """UsageError naming the first clip (in the given order) that is not a readable 16-bit PCM WAV file, with
    how many more are bad. Headers only: the same `wave` parser `harness.audio.wav.read_wav` uses."""
    problems = [p for p in map(wav_problem, paths) if p is not None]
    if problems:
        more = f" (and {len(problems) - 1} more bad clips)" if len(problems) > 1 else ""
        raise UsageError(problems[0] + more)


def wav_problem(path: str | Path) -> str | None:
    """Why `path` is not a 16-bit PCM WAV file read_wav can read, from its header; None when it is one."""
    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, frames = wf.getnchannels(), wf.getsampwidth(), wf.getnframes()
            rate = wf.getframerate()
    except FileNotFoundError:
        return f"WAV file not found: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    except (wave.Error, EOFError) as exc:
        return f"cannot read {path}: not a 16-bit PCM WAV file ({exc or 'truncated header'})"
    if width != 2 or channels not in (1, 2) or rate <= 0 or frames == 0:
        return (f"cannot read {path}: {8 * width}-bit, {channels} channel(s), {rate} Hz, {frames} frames "
                "(only non-empty 16-bit PCM mono or stereo WAV is supported)")
    if os.path.getsize(path) < frames * channels * width:  # the header promises more audio than the file holds
        return f"cannot read {path}: truncated (the header promises {frames * channels * width} data bytes)"
    return None
