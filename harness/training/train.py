"""The one entry point that trains and evaluates a planned run: `train(plan, device, progress)`.

It decides what kind of training the plan needs (the supervised loop, or an SB3 agent for control
tasks), whether frozen features come from the cache (and then skips loading the backbone), and
builds the model; the loops themselves live in supervised.py and reinforcement.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.errors import UsageError
from harness.planning import RunPlan
from harness.progress import ProgressReporter
from harness.training.feature_cache import FeatureCache
from harness.training.memory import reset_peak_memory
from harness.training.model import CachedFeatureSource, apply_adaptation, build_task_model
from harness.training.seeding import seed_everything
from harness.training.supervised import TrainResult, train_and_evaluate

log = logging.getLogger("harness")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """"auto" becomes cuda when torch sees a GPU, else cpu; an unusable request is a usage error."""
    if device not in DEVICES:
        raise UsageError(f"invalid device '{device}' (use {', '.join(DEVICES)})")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def train(plan: RunPlan, device: str, progress: ProgressReporter) -> TrainResult:
    """Train and evaluate the planned run on `device`; the result holds test metrics, predictions and weights."""
    scope = reset_peak_memory(device)  # the peak memory a record reports is this run's, not the process's
    result = _train(plan, device, progress)
    result.execution["peak_mem_scope"] = scope
    return result


def _train(plan: RunPlan, device: str, progress: ProgressReporter) -> TrainResult:
    if plan.modality == "control":
        # stable-baselines3 and gymnasium load only for control runs (about half a second of every start-up)
        from harness.training.reinforcement import train_and_evaluate_control

        return train_and_evaluate_control(plan.task, policy_backbone_factory(plan), plan.protocol, plan.seed, device,
                                          frozen=plan.adaptation.mode == "frozen", pretrained=plan.asset.pretrained,
                                          progress=progress)
    cache = feature_cache_for(plan)
    backbone = cached_feature_source(plan, cache) if cache is not None else None
    if backbone is None:
        backbone = plan.backbone.build(plan.asset)
    else:
        log.info("every split's features are in the cache: the backbone is not loaded")
    seed_everything(plan.seed, plan.deterministic)  # the head's initialisation depends on it too
    model = build_task_model(plan.task, plan.backbone, backbone, plan.protocol, plan.adaptation)
    return train_and_evaluate(plan.task, model, plan.protocol, plan.seed, device, progress, plan.deterministic,
                              feature_cache=cache, final_split=plan.final_split)


def policy_backbone_factory(plan: RunPlan) -> Callable[[], torch.nn.Module]:
    """What SB3 calls for each network it builds (DQN's target net gets its own copy of the backbone)."""
    probe = plan.task.make_env(plan.protocol)
    obs_dim = int(np.prod(probe.observation_space.shape))
    probe.close()

    def make_backbone() -> torch.nn.Module:
        backbone = plan.backbone.build(plan.asset)
        if hasattr(backbone, "configure"):  # backbones shaped by the task (the control MLP, Whisper's clip length)
            backbone.configure({"obs_dim": obs_dim, **plan.protocol.backbone})
        plan.adaptation.check_layers(backbone.num_layers, plan.backbone.name)
        apply_adaptation(backbone, plan.adaptation)
        return backbone

    return make_backbone


def feature_cache_for(plan: RunPlan) -> FeatureCache | None:
    """The frozen-feature cache for this run's (backbone, preprocessing, data) identity, if it applies. `data`
    is the content fingerprint of the task's files, so changed data never reuses features; the cached ids are
    checked on every read, so another split membership never does either."""
    if plan.adaptation.mode != "frozen" or not plan.task.pooled_features:
        return None
    config = plan.config
    return FeatureCache({"backbone": config["backbone"], "revision": config["backbone_revision"],
                         "task": config["task"], "task_version": config["task_version"], "data": config["data"],
                         "inputs": config["protocol"]["inputs"]})


def cached_feature_source(plan: RunPlan, cache: FeatureCache) -> Any:
    """A weightless stand-in for the backbone when the cache holds every split's features, else None."""
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
