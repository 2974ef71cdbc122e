"""Leaderboard definitions (`leaderboards/NAME.toml`) and the cells they ask for.

A leaderboard names tasks, models (a backbone with an adaptation mode, optionally limited to some
tasks), seeds and one protocol. Its cells are every (task, model, seed) whose backbone fits the task.
Definitions are plain TOML data: nothing in them is executed.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness.adaptation import Adaptation
from harness.errors import UsageError


@dataclass(frozen=True)
class Model:
    backbone: str
    adapt: str
    tasks: tuple[str, ...] | None = None  # None: every task the backbone fits

    @property
    def name(self) -> str:
        """The backbone's name in run records (a folder's base name, a registered model for its hub id)."""
        from harness.backbones.spec import record_name

        return record_name(self.backbone)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.adapt})"


@dataclass(frozen=True)
class Cell:
    task: str
    model: Model
    seed: int


@dataclass(frozen=True)
class Leaderboard:
    name: str
    description: str
    protocol: str
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    models: tuple[Model, ...]
    path: Path | None = None

    def pairs(self) -> list[tuple[str, Model]]:
        """(task, model) for every model whose backbone fits the task, in definition order."""
        from harness.backbones.spec import BACKBONES
        from harness.task import TASKS

        pairs = []
        for task in self.tasks:
            kind = TASKS.get(task).spec.backbone_kind
            for model in self.models:
                if model.tasks is not None:  # explicit task lists are trusted (and may name unregistered paths)
                    if task in model.tasks:
                        pairs.append((task, model))
                elif BACKBONES.get(model.backbone).modality == kind:
                    pairs.append((task, model))
        return pairs

    def cells(self) -> list[Cell]:
        return [Cell(task, model, seed) for task, model in self.pairs() for seed in self.seeds]


def search_path() -> list[Path]:
    """Where definitions are looked up: $HARNESS_LEADERBOARDS, ./leaderboards, the source checkout's."""
    paths = [Path(p) for p in os.environ.get("HARNESS_LEADERBOARDS", "").split(os.pathsep) if p]
    paths += [Path("leaderboards"), Path(harness.__file__).resolve().parent.parent / "leaderboards"]
    return list(dict.fromkeys(p.resolve() for p in paths))


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in search_path():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def load_leaderboard(name_or_path: str) -> Leaderboard:
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.is_file()):
        known = available()
        if name_or_path not in known:
            import difflib

            hint = difflib.get_close_matches(name_or_path, list(known), n=1)
            extra = f"; did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(known) or 'none'})"
            raise UsageError(f"unknown leaderboard '{name_or_path}'{extra}")
        path = known[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"leaderboard {path} is not valid TOML: {exc}") from None
    return parse_leaderboard(data, path)


def parse_leaderboard(data: dict[str, Any], path: Path | None = None) -> Leaderboard:
    where = str(path) if path else "leaderboard"
    from harness.backbones.spec import BACKBONES
    from harness.task import TASKS

    def need(key: str, kind: type) -> Any:
        if not isinstance(data.get(key), kind):
            raise UsageError(f"{where}: '{key}' must be a {kind.__name__}")
        return data[key]

    seeds = tuple(need("seeds", list))
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise UsageError(f"{where}: 'seeds' must be a non-empty list of non-negative integers")
    tasks = tuple(need("tasks", list))
    for task in tasks:
        TASKS.get(task)  # unknown names fail here, with a did-you-mean
    models = []
    for entry in need("models", list):
        if not isinstance(entry, dict) or "backbone" not in entry:
            raise UsageError(f"{where}: every model needs a 'backbone'")
        if entry["backbone"] not in BACKBONES and "tasks" not in entry:
            raise BACKBONES.unknown(entry["backbone"])  # an unregistered one (a path) must list its tasks
        adapt = str(Adaptation.parse(entry.get("adapt", "full")))
        only = entry.get("tasks")
        models.append(Model(entry["backbone"], adapt, tuple(only) if only is not None else None))
    protocol = need("protocol", str)
    return Leaderboard(name=need("name", str), description=str(data.get("description", "")), protocol=protocol,
                       seeds=seeds, tasks=tasks, models=tuple(models), path=path)


def run_leaderboard(board: Leaderboard, runs_dir: str | Path | None = None, device: str = "auto",
                    progress: bool = True, explain: bool = False) -> dict[str, list[Any]]:
    """Run every missing cell (complete ones are skipped by config hash); one failing cell does not stop
    the others. Returns {"reused": [...], "ran": [...], "failed": [(task, model, seed, error)]}."""
    import logging

    from harness import api
    from harness.errors import HarnessError

    log = logging.getLogger("harness")
    summary: dict[str, list[Any]] = {"reused": [], "ran": [], "failed": []}
    pairs = board.pairs()
    for index, (task, model) in enumerate(pairs, 1):
        log.info("[%d/%d] %s with %s, seeds %s", index, len(pairs), task, model.label,
                 ",".join(map(str, board.seeds)))
        for seed in board.seeds:
            try:
                (outcome,) = api.run(task, backbone=model.backbone, protocol=board.protocol, seeds=[seed],
                                     adapt=model.adapt, device=device, runs_dir=runs_dir, progress=progress,
                                     explain=explain)
            except HarnessError as exc:
                log.warning("%s / %s / seed %d failed: %s", task, model.label, seed, exc)
                summary["failed"].append((task, model.label, seed, str(exc)))
                continue
            summary["reused" if outcome.reused else "ran"].append(outcome.record["run_id"])
    return summary
