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
from harness.backbones.spec import BACKBONES, record_name
from harness.errors import UsageError, did_you_mean
from harness.task import TASKS


@dataclass(frozen=True)
class ModelSelection:
    """One leaderboard row: a backbone (registered name, hub id or folder) with an adaptation mode."""

    backbone: str
    adapt: str
    tasks: tuple[str, ...] | None = None  # None: every task the backbone fits

    @property
    def name(self) -> str:
        """The backbone's name in run records (a folder's base name, a registered model for its hub id)."""
        return record_name(self.backbone)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.adapt})"


@dataclass(frozen=True)
class Cell:
    task: str
    model: ModelSelection
    seed: int


@dataclass(frozen=True)
class Leaderboard:
    name: str
    description: str
    protocol: str
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    models: tuple[ModelSelection, ...]
    path: Path | None = None

    def pairs(self) -> list[tuple[str, ModelSelection]]:
        """(task, model) for every model whose backbone fits the task, in definition order."""
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
            raise UsageError(f"unknown leaderboard '{name_or_path}'{did_you_mean(name_or_path, known)}")
        path = known[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"leaderboard {path} is not valid TOML: {exc}") from None
    return parse_leaderboard(data, path)


def parse_leaderboard(data: dict[str, Any], path: Path | None = None) -> Leaderboard:
    where = str(path) if path else "leaderboard"

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
        models.append(ModelSelection(entry["backbone"], adapt, tuple(only) if only is not None else None))
    protocol = need("protocol", str)
    return Leaderboard(name=need("name", str), description=str(data.get("description", "")), protocol=protocol,
                       seeds=seeds, tasks=tasks, models=tuple(models), path=path)
