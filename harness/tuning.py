"""Per-model tuning on dev: the search space a run uses, its grid, and the choice.

A protocol declares a small search space (`TrainingProtocol.search`); a leaderboard or `harness tune` may
replace it (for the board, or per model). Fields that cannot change a run under its adaptation are dropped
(a frozen backbone ignores `lr`). Each grid point is trained as a *trial* on the tuning seeds and scored on
dev only; the point with the best mean dev primary metric is chosen (ties: the earlier point in grid order),
and only that configuration is tested, once per leaderboard seed. The choice is part of the tested runs'
configuration, and the trials are recorded in their records.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from harness.adaptation import Adaptation
from harness.errors import UsageError
from harness.leaderboard import Cell, Leaderboard, ModelSelection
from harness.protocol import check_search_space
from harness.task import TASKS

FROZEN_IGNORES = ("lr",)  # a frozen backbone does not train: its learning rate changes nothing


def search_space(board: Leaderboard, task: str, model: ModelSelection) -> dict[str, tuple[Any, ...]]:
    """The space `model` is tuned over on `task`: the model's own, else the board's, else the protocol's,
    without the fields its adaptation ignores. UsageError when nothing is left to tune."""
    task_cls = TASKS.get(task)
    if task_cls.spec.modality == "control":
        raise UsageError(f"task '{task}' is a control task: tuning chooses on a dev split, which control tasks "
                         "do not have")
    protocol = task_cls.protocols[board.protocol]
    declared = dict(model.search) or dict(board.search) or dict(protocol.search)
    space = check_search_space(declared)
    if Adaptation.parse(model.adapt).mode == "frozen":
        space = {k: v for k, v in space.items() if k not in FROZEN_IGNORES}
    if not space:
        where = "its protocol" if not (model.search or board.search) else "the search space given"
        raise UsageError(f"nothing to tune for {task} / {model.label}: {where} declares no field that changes "
                         f"a {model.adapt} run (protocol '{board.protocol}' searches "
                         f"{', '.join(protocol.search) or 'nothing'}; a frozen backbone ignores lr)")
    return space


def grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the space's values, in declaration order (the first field varies slowest)."""
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n] for n in names))]


def changes_of(point: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(point.items()))


def trial_cells(board: Leaderboard, task: str, model: ModelSelection) -> list[Cell]:
    """The trials of one (task, model) of a tuned board: one per grid point and tuning seed."""
    return [Cell(task, model, seed, changes_of(point), role="trial")
            for point in grid(search_space(board, task, model)) for seed in board.trial_seeds]


def choose(space: Mapping[str, Sequence[Any]], trials: Sequence[dict[str, Any]], metric: str,
           higher_is_better: bool, seeds: Sequence[int]) -> dict[str, Any]:
    """The grid point with the best mean dev `metric` over `seeds`, from trial records (each with `changes`,
    `seed` and `dev`: its dev score). Points missing a seed's trial are not chosen. Returns the tuning block:
    space, seeds, selection rule, chosen point, and every trial's score."""
    points = grid(space)
    scores: list[float | None] = []
    for point in points:
        found = {t["seed"]: t["dev"] for t in trials if dict(t["changes"]) == point}
        scores.append(sum(found[s] for s in seeds) / len(seeds) if all(s in found for s in seeds) else None)
    usable = [i for i, score in enumerate(scores) if score is not None]
    if not usable:
        raise UsageError("no trial of the search space finished, so nothing can be chosen")
    sign = 1.0 if higher_is_better else -1.0
    best = max(usable, key=lambda i: (sign * scores[i], -i))  # ties: the earlier point
    return {"space": {k: list(v) for k, v in space.items()}, "seeds": list(seeds),
            "selected_by": f"mean dev {metric} over seeds {', '.join(map(str, seeds))}",
            "chosen": points[best],
            "trials": [{"point": p, "mean_dev": s} for p, s in zip(points, scores, strict=True)]}


def tuning_config(block: Mapping[str, Any]) -> str:
    """What of a tuning block identifies the tested runs (canonical JSON): the space, the tuning seeds and the
    choice. The trials' scores stay in the run record, out of the configuration."""
    return json.dumps({"space": block["space"], "seeds": block["seeds"], "chosen": block["chosen"]},
                      sort_keys=True, separators=(",", ":"))


def tested_cells(board: Leaderboard, task: str, model: ModelSelection, block: Mapping[str, Any]) -> list[Cell]:
    """The tested runs of a tuned (task, model): the chosen point, once per leaderboard seed; each run's record
    keeps the whole tuning block (with every trial's dev score)."""
    notes = json.dumps({"tuning": dict(block)}, sort_keys=True)
    return [Cell(task, model, seed, changes_of(block["chosen"]), tuning=tuning_config(block), record_notes=notes)
            for seed in board.seeds]
