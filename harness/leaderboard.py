"""Leaderboard definitions (`leaderboards/NAME.toml`) and the cells they ask for.

A leaderboard names tasks, models (a backbone with an adaptation mode, optionally limited to some
tasks), seeds and one protocol. Its cells are every (task, model, seed) whose backbone fits the task.
Definitions are plain TOML data: nothing in them is executed.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import harness
from harness.adaptation import Adaptation
from harness.backbones.spec import BACKBONES, record_name
from harness.errors import UsageError, did_you_mean, one_line
from harness.protocol import check_search_space
from harness.store import MAX_SEED, seed_problem
from harness.task import TASKS


@dataclass(frozen=True)
class ModelSelection:
    """One leaderboard row: a backbone (registered name, hub id or folder) with an adaptation mode."""

    backbone: str
    adapt: str
    tasks: tuple[str, ...] | None = None  # None: every task the backbone fits
    search: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # this model's search space (tuned boards), else the board's

    @property
    def name(self) -> str:
        """The backbone's name in run records (a folder's base name, a registered model for its hub id)."""
        return record_name(self.backbone)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.adapt})"


@dataclass(frozen=True)
class Cell:
    """One run a leaderboard asks for. A tuned board also asks for trials (`role` "trial": trained with the
    protocol `changes`, scored on dev, never tested) and then for the tested runs of the chosen `changes`,
    whose `tuning` (canonical JSON: the search space, tuning seeds and choice) goes into their configuration."""

    task: str
    model: ModelSelection
    seed: int
    changes: tuple[tuple[str, Any], ...] = ()
    role: str = "test"  # or "trial"
    tuning: str = ""
    record_notes: str = ""  # JSON merged into the run's record, outside its configuration (the trials' scores)


@dataclass(frozen=True)
class Leaderboard:
    name: str
    description: str
    protocol: str
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    models: tuple[ModelSelection, ...]
    path: Path | None = None
    tune: bool = False  # choose each model's settings per task on dev (harness tune) before the tested runs
    tune_seeds: tuple[int, ...] = ()  # the seeds trials run with (default: the first seed)
    search: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # overrides the protocol's search space

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
        """The tested runs of an untuned board (a tuned board's depend on its trials: harness.execution)."""
        return [Cell(task, model, seed) for task, model in self.pairs() for seed in self.seeds]

    @property
    def trial_seeds(self) -> tuple[int, ...]:
        return self.tune_seeds or self.seeds[:1]


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
                if path.is_file():
                    found.setdefault(path.stem, path)
    return found


def load_leaderboard(name_or_path: str) -> Leaderboard:
    """A leaderboard by name (see `available`) or by the path of its .toml file, checked in full
    (`parse_leaderboard`); any problem is one UsageError line naming the file."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.is_file()):
        known = available()
        if name_or_path not in known:
            raise UsageError(f"unknown leaderboard {name_or_path!r}{did_you_mean(name_or_path, known)}")
        path = known[name_or_path]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(one_line(f"leaderboard {path} is not valid TOML: {exc}")) from None
    return parse_leaderboard(data, path)


FIELDS = ("name", "description", "protocol", "seeds", "tasks", "models", "tune", "tune_seeds", "search")
MODEL_FIELDS = ("backbone", "adapt", "tasks", "search")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a leaderboard's name is a folder name: reports/NAME


def _fail(where: str, field: str, message: str) -> NoReturn:
    raise UsageError(one_line(f"{where}: {field}: {message}"))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_leaderboard(data: dict[str, Any], path: Path | None = None) -> Leaderboard:
    """A leaderboard from its TOML data, checked in full: no unknown field, the types of every field, known
    tasks (each once), seeds (integers from 0 to 2**32 - 1, each once), the protocol in every task's protocol
    table, models (known adaptation modes, backbones that fit their tasks, none twice). Any problem is one
    UsageError line naming the file and the field."""
    where = f"leaderboard {path}" if path else "leaderboard"
    _known_fields(data, FIELDS, where, "")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        _fail(where, "name", f"must be a plain name (letters, digits, '.', '_', '-'), not {_shown(name)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(where, "description", f"must be a string, not {_shown(description)}")
    seeds = _seeds(data.get("seeds"), where)
    tasks = _names(data.get("tasks"), where, "tasks", "task names")
    for i, task in enumerate(tasks):
        if task not in TASKS:
            _fail(where, f"tasks[{i}]", str(TASKS.unknown(task)))
    protocol = data.get("protocol")
    if not isinstance(protocol, str) or not protocol:
        _fail(where, "protocol", f"must be a protocol name (e.g. \"quick\"), not {_shown(protocol)}")
    for task in tasks:
        table = TASKS.get(task).protocols
        if protocol not in table:
            _fail(where, "protocol", f"unknown protocol {protocol!r} for task {task!r} (use {', '.join(table)})")
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        _fail(where, "models", f"must be a non-empty list of tables like {{ backbone = \"minilm\", adapt = "
                               f"\"full\" }}, not {_shown(entries)}")
    models = tuple(_model(entry, f"models[{i}]", tasks, where) for i, entry in enumerate(entries))
    _no_repeated_models(models, where)
    tune = data.get("tune", False)
    if not isinstance(tune, bool):
        _fail(where, "tune", f"must be true or false, not {_shown(tune)}")
    tune_seeds = _seeds(data["tune_seeds"], where, "tune_seeds") if "tune_seeds" in data else ()
    search = _search(data.get("search"), where, "search")
    if not tune and (tune_seeds or search or any(m.search for m in models)):
        _fail(where, "tune", "tune_seeds and search spaces need tune = true")
    return Leaderboard(name=name, description=description, protocol=protocol, seeds=seeds, tasks=tasks,
                       models=models, path=path, tune=tune, tune_seeds=tune_seeds, search=search)


def _search(value: Any, where: str, field: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """A search space table such as { lr = [3e-5, 1e-4] }, checked as a protocol's is."""
    if value is None:
        return ()
    try:
        return tuple(check_search_space(value).items())
    except ValueError as exc:
        _fail(where, field, str(exc))


def _known_fields(table: dict[str, Any], known: tuple[str, ...], where: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            _fail(where, f"{prefix}{key}", f"unknown field{did_you_mean(key, known)}")


def _seeds(value: Any, where: str, field: str = "seeds") -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        _fail(where, field, f"must be a non-empty list of integers from 0 to {MAX_SEED}, not {_shown(value)}")
    for i, seed in enumerate(value):
        problem = seed_problem(seed)
        if problem is not None:
            _fail(where, f"{field}[{i}]", problem)
        if seed in value[:i]:
            _fail(where, f"{field}[{i}]", f"seed {seed} is given twice")
    return tuple(value)


def _names(value: Any, where: str, field: str, what: str) -> tuple[str, ...]:
    """A non-empty list of distinct non-empty strings without control characters."""
    if not isinstance(value, list) or not value:
        _fail(where, field, f"must be a non-empty list of {what}, e.g. [\"ner\"], not {_shown(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or any(ord(c) < 32 for c in item):
            _fail(where, f"{field}[{i}]", f"must be one of {what}, not {_shown(item)}")
        if item in value[:i]:
            _fail(where, f"{field}[{i}]", f"{item!r} is given twice")
    return tuple(value)


def _model(entry: Any, field: str, tasks: tuple[str, ...], where: str) -> ModelSelection:
    if not isinstance(entry, dict):
        _fail(where, field, f"must be a table like {{ backbone = \"minilm\", adapt = \"full\" }}, not {_shown(entry)}")
    _known_fields(entry, MODEL_FIELDS, where, f"{field}.")
    backbone = entry.get("backbone")
    if not isinstance(backbone, str) or not backbone.strip() or any(ord(c) < 32 for c in backbone):
        _fail(where, f"{field}.backbone", f"must be a backbone name, hub id or folder, not {_shown(backbone)}")
    adapt = entry.get("adapt", "full")
    if not isinstance(adapt, str):
        _fail(where, f"{field}.adapt", f"must be frozen, full or partial:N, not {_shown(adapt)}")
    try:
        adapt = str(Adaptation.parse(adapt))
    except UsageError as exc:
        _fail(where, f"{field}.adapt", str(exc))
    only = entry.get("tasks")
    if only is not None:
        only = _names(only, where, f"{field}.tasks", "the leaderboard's tasks")
        for task in only:
            if task not in tasks:
                _fail(where, f"{field}.tasks", f"{task!r} is not among the leaderboard's tasks ({', '.join(tasks)})")
    if backbone in BACKBONES:
        spec = BACKBONES.get(backbone)
        try:
            Adaptation.parse(adapt).check_layers(spec.num_layers, backbone)
        except UsageError as exc:
            _fail(where, f"{field}.adapt", str(exc))
        modality = spec.modality
        for task in only or ():
            needed = TASKS.get(task).spec.backbone_kind
            if modality != needed:
                _fail(where, f"{field}.tasks", f"backbone {backbone!r} is a {modality} backbone; task {task!r} "
                                               f"needs a {needed} one")
    elif only is None:  # an unregistered one (a folder, a hub id) must list its tasks
        _fail(where, f"{field}.backbone", f"{BACKBONES.unknown(backbone)} (a folder or hub id needs a 'tasks' list)")
    return ModelSelection(backbone, adapt, only, _search(entry.get("search"), where, f"{field}.search"))


def _no_repeated_models(models: tuple[ModelSelection, ...], where: str) -> None:
    """Two entries of one backbone and adaptation mode may share no task: they would be the same runs."""
    for i, model in enumerate(models):
        for j, other in enumerate(models[:i]):
            shared = model.tasks is None or other.tasks is None or set(model.tasks) & set(other.tasks)
            if (model.backbone, model.adapt) == (other.backbone, other.adapt) and shared:
                _fail(where, f"models[{i}]", f"repeats models[{j}] (backbone {model.backbone!r}, adapt {model.adapt})")
