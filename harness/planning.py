"""What runs: one task's runs (one per seed), a leaderboard's cells, or a stored run rebuilt, each as a
`RunPlan` that fixes everything identifying the run (config, config hash, run id) without touching torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.adaptation import Adaptation
from harness.assets import ResolvedAsset
from harness.backbones.spec import BackboneSpec, resolve_backbone
from harness.errors import UsageError
from harness.leaderboard import Cell, Leaderboard
from harness.store import config_hash, make_run_id
from harness.task import TASKS, Task


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

    @property
    def modality(self) -> str:
        return self.task.spec.modality or ""


def plan_runs(task: str, backbone: str | None = None, protocol: str | Any = None,
              seeds: Sequence[int] = (0,), adapt: str | None = None, deterministic: bool = False,
              data_dir: str | None = None) -> list[RunPlan]:
    """One plan per distinct seed (order kept). Unknown names and invalid settings raise UsageError.
    `protocol` is a name from the task's table, or a protocol derived from one by the caller, e.g.
    `task.protocols["standard"].with_changes(name="standard-1epoch", epochs=1)` (its name goes into the run id)."""
    task_obj = TASKS.get(task)(data_dir=data_dir) if data_dir else TASKS.get(task)()
    spec = task_obj.spec
    chosen_protocol = _choose_protocol(task_obj, protocol)
    adaptation = Adaptation.parse(adapt or spec.default_adapt)
    backbone_spec = resolve_backbone(backbone or spec.default_backbone, spec.backbone_kind)
    adaptation.check_layers(backbone_spec.num_layers, backbone_spec.name)
    if not seeds or any(s < 0 for s in seeds):
        raise UsageError("seeds must be non-negative integers")
    asset = backbone_spec.resolve()
    data = task_obj.data_fingerprint()
    plans = []
    for seed in dict.fromkeys(seeds):  # unique, order kept
        config = {
            "task": spec.name,
            "task_version": spec.version,
            "data": data,
            "backbone": backbone_spec.name,
            "backbone_revision": asset.revision,
            "adapt": str(adaptation),
            "protocol": chosen_protocol.to_dict(),
            "seed": seed,
            "deterministic": deterministic,
            "harness": harness.__version__,
        }
        digest = config_hash(config)
        run_id = make_run_id(spec.name, backbone_spec.name, str(adaptation), chosen_protocol.name, seed, digest)
        plans.append(RunPlan(task_obj, backbone_spec, asset, chosen_protocol, adaptation, seed, deterministic,
                             config, digest, run_id))
    return plans


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


def plan_cell(board: Leaderboard, cell: Cell) -> RunPlan:
    """The run a leaderboard cell asks for."""
    (plan,) = plan_runs(cell.task, backbone=cell.model.backbone, protocol=board.protocol, seeds=[cell.seed],
                        adapt=cell.model.adapt)
    return plan


def plan_for_record(record: dict[str, Any], data_dir: str | None = None) -> RunPlan:
    """The plan that made a stored run, refusing when this harness would now make a different run."""
    backbone = record.get("backbone_ref") or record["backbone"]  # a folder-made run names its folder there
    if backbone.startswith("/") and not Path(backbone).is_dir():
        raise UsageError(f"run {record['run_id']} was trained from the backbone folder {backbone}, "
                         "which no longer exists: put the folder back to explain it")
    plan = plan_runs(record["task"], backbone, record["protocol"], [record["seed"]], record["adapt"],
                     bool(record["config"].get("deterministic")), data_dir)[0]
    if plan.config_hash != record["config_hash"]:
        changed = sorted(k for k in plan.config if plan.config.get(k) != record["config"].get(k))
        raise UsageError(f"run {record['run_id']} cannot be rebuilt here: its configuration differs in "
                         f"{', '.join(changed) or 'the config hash'} (another harness version, task version or data)")
    return plan
