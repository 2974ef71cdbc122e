"""What runs: one task's runs (one per seed), a leaderboard's cells, or a stored run rebuilt, each as a
`RunPlan` that fixes everything identifying the run (config, config hash, run id) without touching torch."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.adaptation import Adaptation
from harness.assets import ResolvedAsset
from harness.backbones.spec import BackboneSpec, resolve_backbone
from harness.errors import UsageError, first_line
from harness.leaderboard import Cell, Leaderboard
from harness.protocol import PRECISIONS, TrainingProtocol, channels_last_on_cpu
from harness.store import MAX_SEED, canonical_json, config_hash, make_run_id, seed_problem
from harness.task import SPLITS, TASKS, Task


@dataclass
class RunPlan:
    """Everything that identifies one run, resolved without touching torch."""

    task: Task
    backbone: BackboneSpec
    asset: ResolvedAsset
    protocol: Any  # TrainingProtocol, or ControlProtocol for control tasks
    adaptation: Adaptation
    seed: int
    deterministic: bool
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    run_id: str = ""
    trial: bool = False  # a tuning trial: scored on dev, never tested
    record_notes: dict[str, Any] = field(default_factory=dict)  # added to the run record, not to its config

    @property
    def final_split(self) -> str:
        """The split the trained model is scored on: test, or dev for a tuning trial."""
        return "dev" if self.trial else "test"

    @property
    def modality(self) -> str:
        return self.task.spec.modality or ""


def plan_runs(task: str, backbone: str | None = None, protocol: str | Any = None,
              seeds: Sequence[int] = (0,), adapt: str | None = None, deterministic: bool = False,
              data_dir: str | None = None, trial: bool = False, tuning: dict[str, Any] | None = None) -> list[RunPlan]:
    """One plan per seed (order kept). Unknown names and invalid settings (a seed out of range or repeated)
    raise UsageError.
    `protocol` is a name from the task's table, or a protocol derived from one by the caller, e.g.
    `task.protocols["standard"].with_changes(name="standard-1epoch", epochs=1)` (its name goes into the run id).
    `trial`: a tuning trial, scored on dev only; `tuning`: the tuning that chose this run's settings
    (`harness.tuning.tuning_config`). Both are part of the configuration, so neither shares a run id with a
    plain run of the same settings."""
    seeds = check_seeds(seeds)
    task_obj = TASKS.get(task)(data_dir=data_dir) if data_dir else TASKS.get(task)()
    spec = task_obj.spec
    chosen_protocol = _choose_protocol(task_obj, protocol)
    adaptation = Adaptation.parse(adapt or spec.default_adapt)
    backbone_spec = resolve_backbone(backbone or spec.default_backbone, spec.backbone_kind)
    adaptation.check_layers(backbone_spec.num_layers, backbone_spec.name)
    asset = backbone_spec.resolve()
    data = task_obj.data_fingerprint()
    examples = example_identity(task_obj, chosen_protocol, data)
    plans = []
    for seed in seeds:
        config = {
            "task": spec.name,
            "task_version": spec.version,
            "data": data,
            **examples,
            "backbone": backbone_spec.name,
            "backbone_revision": asset.revision,
            "adapt": str(adaptation),
            "protocol": chosen_protocol.to_dict(),
            "seed": seed,
            "deterministic": deterministic,
            "harness": harness.__version__,
        }
        config.update(execution_numerics(task_obj, adaptation))
        if trial:
            config["evaluated_on"] = "dev"
        if tuning:
            config["tuning"] = tuning
        digest = config_hash(config)
        run_id = make_run_id(spec.name, backbone_spec.name, str(adaptation), chosen_protocol.name, seed, digest)
        plans.append(RunPlan(task_obj, backbone_spec, asset, chosen_protocol, adaptation, seed, deterministic,
                             config, digest, run_id, trial))
    return plans


def execution_numerics(task: Task, adaptation: Adaptation) -> dict[str, Any]:
    """How the harness executes this run where that changed its numbers (float rounding, not the recipe): part
    of the configuration, so runs from before such a change never share a run id with runs after it.
    Empty for runs it does not concern, so their ids stay as they were.
    - image backbones run channels-last (NHWC) in training and evaluation, on CPU as on CUDA
      (`protocol.channels_last_on_cpu`; the pixel-control encoder always);
    - a frozen encoder of rendered frames encodes each frame once (`training/frame_memo.py`)."""
    if task.spec.backbone_kind != "image":
        return {}
    frozen = adaptation.mode == "frozen"
    if task.spec.modality == "control":
        numerics = {"memory_format": "channels-last"} | ({"frozen_frames": "encoded once"} if frozen else {})
        return {"numerics": numerics}
    if not channels_last_on_cpu(task.spec.modality, frozen and task.pooled_features):
        return {}
    return {"numerics": {"memory_format": "channels-last"}}


# Split digests already computed in this process, by (task class, data dir, data fingerprint, limits): a
# leaderboard plans one task many times, and loading a big image set's splits takes a second or two.
_SPLIT_DIGESTS: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
_SPLIT_MEMO_SIZE = 64


def example_identity(task: Task, protocol: Any, data: str) -> dict[str, Any]:
    """The config entries that pin which examples a run sees and what it predicts: the digest of the label
    list (order is the head's) and each split's ids as the run loads them. Control tasks have neither."""
    if task.spec.modality == "control":
        return {}
    return {"labels": labels_digest(task.labels), "splits": split_digests(task, protocol, data)}


def labels_digest(labels: Sequence[str]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(list(labels), ensure_ascii=False).encode()).hexdigest()


def split_digests(task: Task, protocol: Any, data: str) -> dict[str, dict[str, Any]]:
    """{split: {"examples": n, "ids": "sha256:..."}} over the ids, in order, of `load_split(split, limit)`
    with the protocol's limits: a changed split salt or list moves examples between splits, so it is a new run."""
    limits = tuple(getattr(protocol, f"{split}_limit") for split in SPLITS)
    key = (type(task), task.data_dir, data, limits)
    known = _SPLIT_DIGESTS.get(key)
    if known is None:
        known = {split: _ids_digest([e.id for e in load_split(task, split, limit)])
                 for split, limit in zip(SPLITS, limits, strict=True)}
        if len(_SPLIT_DIGESTS) >= _SPLIT_MEMO_SIZE:
            _SPLIT_DIGESTS.clear()
        _SPLIT_DIGESTS[key] = known
    return {split: dict(entry) for split, entry in known.items()}


def data_dir_note(task: Task) -> str:
    """" (--data-dir DIR)" for a task reading a user's folder, for messages about its data; "" otherwise."""
    return f" (--data-dir {task.data_dir})" if task.data_dir else ""


def load_split(task: Task, split: str, limit: int | None) -> Sequence[Any]:
    """The task's own loader; any failure in it is bad data, named with the task (never a traceback)."""
    try:
        return task.load_split(split, limit)  # type: ignore[attr-defined]  (every supervised task has it)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"task '{task.spec.name}': its {split} data could not be loaded{data_dir_note(task)}: "
                         f"{type(exc).__name__}: {first_line(exc)}") from None


def _ids_digest(ids: list[str]) -> dict[str, Any]:
    return {"examples": len(ids), "ids": "sha256:" + hashlib.sha256(json.dumps(ids).encode()).hexdigest()}


def _shown(text: str) -> str:
    return repr(text if len(text) <= 30 else text[:27] + "...")


def parse_seed(text: str) -> int:
    """A seed as written on the command line: decimal digits (ASCII; spaces around them are fine), 0 to
    2**32 - 1; UsageError otherwise."""
    digits = text.strip(" \t")
    if not re.fullmatch(r"[0-9]+", digits):  # int() would also take '+1', '1_0' and other scripts' digits
        raise UsageError(f"invalid seed {_shown(text)}: expected an integer from 0 to {MAX_SEED}")
    if len(digits.lstrip("0")) > len(str(MAX_SEED)) or int(digits) > MAX_SEED:
        raise UsageError(f"invalid seed {_shown(text)}: seeds go from 0 to {MAX_SEED} (2**32 - 1)")
    return int(digits)


def parse_seeds(text: str) -> list[int]:
    """Comma-separated seeds as written on the command line, e.g. "0,1,2": no empty item, no seed twice."""
    if not text.strip(" \t"):
        raise UsageError("expected a comma-separated list of seeds, e.g. 0,1,2")
    seeds: list[int] = []
    for part in text.split(","):
        if not part.strip(" \t"):
            raise UsageError(f"invalid seed list {_shown(text)}: an empty item (write them as 0,1,2)")
        seed = parse_seed(part)
        if seed in seeds:
            raise UsageError(f"invalid seed list {_shown(text)}: seed {seed} is given twice")
        seeds.append(seed)
    return seeds


def check_seeds(seeds: Sequence[Any]) -> list[int]:
    """The seeds of a request: at least one, each an integer from 0 to 2**32 - 1, none twice (the runs
    would be the same run); UsageError otherwise, before anything is resolved or claimed."""
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence) or not seeds:
        raise UsageError(f"seeds must be a non-empty list of integers, not {seeds!r:.40}")
    seen: set[int] = set()
    for seed in seeds:
        problem = seed_problem(seed)
        if problem is not None:
            raise UsageError(f"invalid seed: {problem}")
        if seed in seen:
            raise UsageError(f"seed {seed} is given twice: each seed is one run")
        seen.add(seed)
    return list(seeds)


def _choose_protocol(task: Task, protocol: str | Any) -> Any:
    if protocol is not None and not isinstance(protocol, str):  # a recipe the caller derived from the table's
        kinds = {type(p) for p in task.protocols.values()}
        if type(protocol) not in kinds or not protocol.name:
            raise UsageError(f"a protocol for task '{task.spec.name}' is one of its protocols' names or a named "
                             f"{' or '.join(sorted(k.__name__ for k in kinds))}, not {protocol!r}")
        return protocol
    name = protocol or task.spec.default_protocol
    if name not in task.protocols:
        raise UsageError(f"unknown protocol '{name}' for task '{task.spec.name}' (use {', '.join(task.protocols)})")
    return task.protocols[name]


def protocol_variant(task: str, protocol: str | Any = None, precision: str | None = None,
                     compile: bool = False) -> str | Any:
    """`protocol` run in another precision or compiled: the same recipe with those fields changed and a name of
    its own ("quick+bf16", "quick+compile"), so reports never mix its runs with the plain recipe's."""
    if precision is None and not compile:
        return protocol
    task_obj = TASKS.get(task)()
    chosen = _choose_protocol(task_obj, protocol)
    if not isinstance(chosen, TrainingProtocol):
        raise UsageError(f"--precision and --compile apply to supervised tasks; '{task}' is a control task")
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}' (use {', '.join(PRECISIONS)})")
    changes: dict[str, Any] = {}
    if precision is not None and precision != chosen.precision:
        changes["precision"] = precision
    if compile and not chosen.compile:
        changes["compile"] = True
    if not changes:
        return chosen
    suffix = [changes["precision"]] if "precision" in changes else []
    name = "+".join([chosen.name, *suffix, *(["compile"] if "compile" in changes else [])])
    return chosen.with_changes(name=name, **changes)


def plan_cell(board: Leaderboard, cell: Cell) -> RunPlan:
    """The run a leaderboard cell asks for (with a tuned board's trial or chosen settings)."""
    protocol: str | Any = board.protocol
    if cell.changes:
        protocol = _choose_protocol(TASKS.get(cell.task)(), board.protocol).with_changes(**dict(cell.changes))
    (plan,) = plan_runs(cell.task, backbone=cell.model.backbone, protocol=protocol, seeds=[cell.seed],
                        adapt=cell.model.adapt, trial=cell.role == "trial",
                        tuning=json.loads(cell.tuning) if cell.tuning else None)
    if cell.record_notes:
        plan.record_notes = json.loads(cell.record_notes)
    return plan


def plan_for_record(record: dict[str, Any], data_dir: str | None = None) -> RunPlan:
    """The plan that made a stored run, refusing when this harness would now make a different run."""
    backbone = record.get("backbone_ref") or record["backbone"]  # a folder-made run names its folder there
    if backbone.startswith("/") and not Path(backbone).is_dir():
        raise UsageError(f"run {record['run_id']} was trained from the backbone folder {backbone}, "
                         "which no longer exists: put the folder back to explain it")
    config = record["config"]
    plan = plan_runs(record["task"], backbone, _recorded_protocol(record), [record["seed"]], record["adapt"],
                     bool(config.get("deterministic")), data_dir, trial=config.get("evaluated_on") == "dev",
                     tuning=config.get("tuning"))[0]
    if plan.config_hash != record["config_hash"]:
        changed = sorted(k for k in plan.config if plan.config.get(k) != record["config"].get(k))
        raise UsageError(f"run {record['run_id']} cannot be rebuilt here: its configuration differs in "
                         f"{', '.join(changed) or 'the config hash'} (another harness version, task version or data)")
    return plan


def _recorded_protocol(record: dict[str, Any]) -> str | Any:
    """A stored run's protocol: its name in the task's table, or, for a recipe derived from one (another
    precision, a compiled backbone, ...), the recipe rebuilt from the record's configuration."""
    task = TASKS.get(record["task"])
    fields = record["config"].get("protocol")
    table = task.protocols.get(record["protocol"])
    unchanged = not isinstance(fields, dict) or (table is not None and canonical_json(fields) == canonical_json(
        table.to_dict()))
    if table is not None and unchanged:
        return record["protocol"]
    if not isinstance(fields, dict):
        raise UsageError(f"run {record['run_id']} does not record its protocol's fields")
    kind = type(next(iter(task.protocols.values())))
    try:
        return kind(**fields)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"run {record['run_id']}: its protocol cannot be rebuilt here ({exc})") from None
