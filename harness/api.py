"""The library face of the harness: what the CLI calls, usable from Python.

    from harness import api
    outcomes = api.run("ner", protocol="smoke", seeds=[0, 1])
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
from harness.adaptation import Adaptation
from harness.backbones.spec import BACKBONES, BackboneSpec, resolve_backbone
from harness.errors import HarnessError, NothingToExplain, RunFailed, UsageError
from harness.progress import ProgressReporter
from harness.protocol import PROTOCOL_NAMES, TrainingProtocol
from harness.store import LOG, SCHEMA_VERSION, RunStore, config_hash, make_run_id
from harness.task import TASKS

log = logging.getLogger("harness")
DEVICES = ("auto", "cpu", "cuda")


def default_runs_dir() -> Path:
    return Path(os.environ.get("HARNESS_RUNS_DIR") or "runs")


# --- listing ----------------------------------------------------------------------------------
def list_tasks() -> list[dict[str, Any]]:
    return [cls.spec.to_dict() | {"origin": TASKS.origin(name), "source": TASKS.source(name)}
            for name, cls in TASKS.items()]


def list_backbones() -> list[dict[str, Any]]:
    return [spec.to_dict() | {"origin": BACKBONES.origin(name), "source": BACKBONES.source(name)}
            for name, spec in BACKBONES.items()]


def list_protocols() -> list[dict[str, Any]]:
    return [{"task": name, **cls.protocols[p].to_dict()} for name, cls in TASKS.items() for p in PROTOCOL_NAMES]


def list_leaderboards() -> list[dict[str, Any]]:
    from harness.leaderboard import available, load_leaderboard

    rows = []
    for name, path in available().items():
        board = load_leaderboard(str(path))
        rows.append({"name": name, "description": board.description, "protocol": board.protocol,
                     "seeds": ",".join(map(str, board.seeds)), "tasks": len(board.tasks),
                     "models": len(board.models), "cells": len(board.cells()), "path": str(path)})
    return rows


def report(leaderboard: str | None = None, runs_dir: str | Path | None = None, out: str | Path | None = None,
           protocol: str | None = None) -> tuple[dict[str, Any], Path]:
    """Build and write a leaderboard report (default folder: reports/NAME); returns (report, folder)."""
    from harness.leaderboard import load_leaderboard
    from harness.report.leaderboard_report import build_report
    from harness.report.render import write_leaderboard

    board = load_leaderboard(leaderboard) if leaderboard else None
    if board is not None and protocol is not None and protocol != board.protocol:
        raise UsageError(f"leaderboard '{board.name}' is defined for protocol {board.protocol}, not {protocol}")
    data = build_report(RunStore(runs_dir or default_runs_dir()), board, protocol)
    data["command"] = (f"harness run --leaderboard {board.name} --explain && harness report --leaderboard {board.name}"
                       if board is not None else f"harness report --protocol {data['protocol']}")
    folder = Path(out) if out else Path("reports") / data["name"]
    write_leaderboard(data, folder)
    return data, folder


def compare(backbones: str, tasks: Sequence[str] | None = None, protocol: str | None = None,
            runs_dir: str | Path | None = None, out: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """Paired comparison of stored runs of two or more models; written as Markdown, HTML and JSON."""
    from harness.report.compare import build_comparison, parse_models
    from harness.report.render import write_comparison

    models = parse_models(backbones)
    for task in tasks or []:
        TASKS.get(task)
    data = build_comparison(RunStore(runs_dir or default_runs_dir()), models, list(tasks) if tasks else None, protocol)
    slug = "-vs-".join(m.replace(" (", "-").replace(")", "") for m in data["models"])
    folder = Path(out) if out else Path("reports") / "compare" / slug.replace("/", "_").replace(":", "")
    write_comparison(data, folder)
    return data, folder


def explain(run_id: str, runs_dir: str | Path | None = None, device: str = "auto", data_dir: str | None = None,
            force: bool = False, progress: bool = False) -> dict[str, Any]:
    """Explain a stored complete run (attributions, faithfulness, summaries); returns its explanation block."""
    from harness.explain.runner import explain_run

    if device not in DEVICES:
        raise UsageError(f"invalid device '{device}' (use {', '.join(DEVICES)})")
    return explain_run(RunStore(runs_dir or default_runs_dir()), run_id, resolve_device(device), data_dir, force,
                       ProgressReporter(progress))


def show(run_id: str, runs_dir: str | Path | None = None) -> dict[str, Any]:
    return RunStore(runs_dir or default_runs_dir()).load(run_id)


def list_runs(runs_dir: str | Path | None = None, **filters: Any) -> list[dict[str, Any]]:
    return RunStore(runs_dir or default_runs_dir()).query(**filters)


# --- running ----------------------------------------------------------------------------------
@dataclass
class RunPlan:
    """Everything that identifies one run, resolved without touching torch."""

    task: Any
    backbone: BackboneSpec
    asset: Any
    protocol: TrainingProtocol
    adaptation: Adaptation
    seed: int
    deterministic: bool
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    run_id: str = ""


@dataclass
class RunOutcome:
    record: dict[str, Any]
    reused: bool  # True when an identical complete run was found and not rerun


def plan_runs(task: str, backbone: str | None = None, protocol: str | None = None,
              seeds: Sequence[int] = (0,), adapt: str | None = None, deterministic: bool = False,
              data_dir: str | None = None) -> list[RunPlan]:
    task_obj = TASKS.get(task)(data_dir=data_dir) if data_dir else TASKS.get(task)()
    spec = task_obj.spec
    protocol_name = protocol or spec.default_protocol
    if protocol_name not in task_obj.protocols:
        raise UsageError(f"unknown protocol '{protocol_name}' for task '{task}' "
                         f"(use {', '.join(task_obj.protocols)})")
    chosen_protocol = task_obj.protocols[protocol_name]
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


def run(task: str, backbone: str | None = None, protocol: str | None = None, seeds: Sequence[int] = (0,),
        adapt: str | None = None, device: str = "auto", runs_dir: str | Path | None = None,
        force: bool = False, deterministic: bool = False, progress: bool = True,
        data_dir: str | None = None, explain: bool = False) -> list[RunOutcome]:
    """Fine-tune and evaluate; one run per seed. Complete identical runs are reused unless force.
    With explain, each complete run is then explained (a stored explanation with the same settings is kept)."""
    if device not in DEVICES:
        raise UsageError(f"invalid device '{device}' (use {', '.join(DEVICES)})")
    store = RunStore(runs_dir or default_runs_dir())
    plans = plan_runs(task, backbone, protocol, seeds, adapt, deterministic, data_dir)
    outcomes = []
    for plan in plans:
        stored = None if force else store.find_complete(plan.run_id, plan.config_hash)
        if stored is not None:
            log.info("run %s is already complete: using the stored result (--force reruns it)", plan.run_id)
            outcomes.append(RunOutcome(stored, reused=True))
            continue
        outcomes.append(RunOutcome(_execute(plan, store, resolve_device(device), ProgressReporter(progress)),
                                   reused=False))
    if explain:
        from harness.explain.runner import explain_run

        for outcome in outcomes:
            try:
                block = explain_run(store, outcome.record["run_id"], resolve_device(device), data_dir,
                                    progress=ProgressReporter(progress))
            except NothingToExplain as exc:  # the run itself stands; only its explanation is empty
                log.warning("run %s: %s", outcome.record["run_id"], exc)
                continue
            outcome.record = outcome.record | {"explanation": block}
    return outcomes


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def _execute(plan: RunPlan, store: RunStore, device: str, progress: ProgressReporter) -> dict[str, Any]:
    spec = plan.task.spec
    started = time.perf_counter()
    with store.claim(plan.run_id) as directory, _log_to(directory / LOG):
        log.info("run %s: task %s v%s, backbone %s (%s), adapt %s, protocol %s, seed %d, device %s",
                 plan.run_id, spec.name, spec.version, plan.backbone.name, plan.asset.source, plan.adaptation,
                 plan.protocol.name, plan.seed, device)
        record = _base_record(plan, device)
        try:
            result = _train(plan, device, progress)
        except HarnessError as exc:
            store.write_result(record | {"status": "failed", "error": str(exc)})
            raise
        except Exception as exc:  # an unexpected failure is still recorded, then reported
            store.write_result(record | {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise RunFailed(f"run {plan.run_id} failed: {type(exc).__name__}: {exc}") from exc
        store.write_predictions(plan.run_id, (
            {"id": i, "pred": p, "ref": r}
            for i, p, r in zip(result.test.ids, result.test.preds, result.test.refs, strict=True)))
        store.write_weights(plan.run_id, result.trainable_state,
                            {"run_id": plan.run_id, "config_hash": plan.config_hash})
        record |= {
            "status": "complete",
            "metrics": result.test.metrics,
            "primary": result.test.metrics[spec.primary.name],
            "n_examples": len(result.test.ids),
            "n_train": result.n_train,
            "n_dev": result.n_dev,
            "best_epoch": result.best_epoch,
            "dev_history": result.dev_history,
            "timing": result.timing | {"total_s": round(time.perf_counter() - started, 3)},
        }
        store.write_result(record)  # last: its presence marks the run complete
        log.info("run %s complete: %s %.4f", plan.run_id, spec.primary.name, record["primary"])
        return record


def _train(plan: RunPlan, device: str, progress: ProgressReporter) -> Any:
    from harness.training.model import build_task_model
    from harness.training.seeding import seed_everything
    from harness.training.supervised import train_and_evaluate

    if plan.task.spec.modality == "control":
        return _train_control(plan, device, progress)
    cache = _feature_cache(plan)
    backbone = _cached_feature_source(plan, cache) if cache is not None else None
    if backbone is None:
        backbone = plan.backbone.build(plan.asset)
    else:
        log.info("every split's features are in the cache: the backbone is not loaded")
    seed_everything(plan.seed, plan.deterministic)  # the head's initialisation depends on it too
    model = build_task_model(plan.task, plan.backbone, backbone, plan.protocol, plan.adaptation)
    return train_and_evaluate(plan.task, model, plan.protocol, plan.seed, device, progress, plan.deterministic,
                              feature_cache=cache)


def _train_control(plan: RunPlan, device: str, progress: ProgressReporter) -> Any:
    from harness.training.control import train_and_evaluate_control

    return train_and_evaluate_control(plan.task, control_backbone_factory(plan), plan.protocol, plan.seed, device,
                                      frozen=plan.adaptation.mode == "frozen",
                                      pretrained=plan.asset.source != "random init", progress=progress)


def control_backbone_factory(plan: RunPlan) -> Any:
    """What SB3 calls for each network it builds (DQN's target net gets its own copy of the backbone)."""
    import numpy as np

    from harness.training.model import apply_adaptation

    probe = plan.task.make_env(plan.protocol)
    obs_dim = int(np.prod(probe.observation_space.shape))
    probe.close()

    def make_backbone() -> Any:
        backbone = plan.backbone.build(plan.asset)
        if hasattr(backbone, "configure"):
            backbone.configure({"obs_dim": obs_dim, **plan.protocol.backbone})
        plan.adaptation.check_layers(backbone.num_layers, plan.backbone.name)
        apply_adaptation(backbone, plan.adaptation)
        return backbone

    return make_backbone


def _cached_feature_source(plan: RunPlan, cache: Any) -> Any:
    """A weightless stand-in for the backbone when the cache holds every split's features, else None."""
    from harness.training.model import CachedFeatureSource

    shapes = set()
    for split in ("train", "dev", "test"):
        limit = getattr(plan.protocol, f"{split}_limit")
        features = cache.lookup(split, limit, [e.id for e in plan.task.load_split(split, limit)])
        if features is None:
            return None
        shapes.add(tuple(features.shape[1:]))
    if len(shapes) != 1:
        return None
    num_states, dim = shapes.pop()
    return CachedFeatureSource(dim, plan.backbone.num_layers or num_states - 1, num_states)


def _feature_cache(plan: RunPlan) -> Any:
    """The frozen-feature cache for this run's (backbone, preprocessing, data) identity, if it applies."""
    if plan.adaptation.mode != "frozen" or not getattr(plan.task, "pooled_features", False):
        return None
    from harness.training.feature_cache import FeatureCache

    config = plan.config
    return FeatureCache({"backbone": config["backbone"], "revision": config["backbone_revision"],
                         "task": config["task"], "task_version": config["task_version"], "data": config["data"],
                         "inputs": config["protocol"]["inputs"]})


def _base_record(plan: RunPlan, device: str) -> dict[str, Any]:
    from harness.environment import describe_environment

    spec = plan.task.spec
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": plan.run_id,
        "status": "running",
        "task": spec.name,
        "task_version": spec.version,
        "backbone": plan.backbone.name,
        # what rebuilds the backbone later (harness explain): a local folder's path, else the name
        "backbone_ref": plan.backbone.local_dir or plan.backbone.name,
        "backbone_source": plan.asset.source,
        "adapt": str(plan.adaptation),
        "protocol": plan.protocol.name,
        "seed": plan.seed,
        "config": plan.config,
        "config_hash": plan.config_hash,
        "primary_metric": spec.primary.name,
        "higher_is_better": spec.primary.higher_is_better,
        "metrics": {},
        "primary": None,
        "n_examples": 0,
        "timing": {},
        "env": describe_environment(device),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class _log_to:
    """Copy the harness log into the run's run.log for the duration of the run."""

    def __init__(self, path: Path):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def __enter__(self) -> None:
        self.handler.setLevel(logging.INFO)
        log.addHandler(self.handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)  # the file gets INFO; other handlers keep their own levels

    def __exit__(self, *exc: object) -> None:
        log.removeHandler(self.handler)
        self.handler.close()
