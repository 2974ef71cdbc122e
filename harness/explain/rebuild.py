"""Rebuild a stored run's trained model (or agent) from its run record and stored weights.

The rebuilt model must be the evaluated one: the plan is re-made from the record and must hash to the
record's config hash, and the stored weights must fill every trained tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.errors import UsageError
from harness.explain.policy import PolicyProbs
from harness.planning import RunPlan
from harness.store import RunStore
from harness.training.model import build_task_model
from harness.training.train import policy_backbone_factory


def load_weights(store: RunStore, run_id: str) -> dict[str, torch.Tensor]:
    """The run's stored trained tensors (safetensors); a missing, truncated or foreign file is one DamagedRecord
    error naming it and the command that makes the run again."""
    return store.read_weights(run_id)


def rebuild_task_model(plan: RunPlan, store: RunStore, run_id: str, device: str) -> tuple[Any, Any]:
    """(backbone, trained task model in eval mode on `device`) of a supervised run."""
    backbone = plan.backbone.build(plan.asset)
    model = build_task_model(plan.task, plan.backbone, backbone, plan.protocol, plan.adaptation)
    state = load_weights(store, run_id)
    absent = set(model.trainable_state()) - set(state)  # e.g. batch-norm statistics, stored only since v2 tasks
    if absent:
        raise UsageError(f"run {run_id}: its stored weights lack {len(absent)} tensors the trained model had "
                         f"(e.g. {sorted(absent)[0]}), so it cannot be rebuilt exactly; rerun it with --force")
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise UsageError(f"run {run_id}: stored weights do not fit the rebuilt model ({len(unexpected)} unexpected)")
    model.to(device).eval()
    return backbone, model


def rebuild_agent(plan: RunPlan, store: RunStore, run_id: str,
                  device: str) -> tuple[PolicyProbs, Callable[[np.ndarray], np.ndarray]]:
    """(trained policy as observations -> action probabilities, the run's observation transform) of a
    control run; the transform replays the run's stored observation normalisation, if any."""
    from harness.training.reinforcement import build_agent  # stable-baselines3: only for control runs

    model, env = build_agent(plan.task, policy_backbone_factory(plan), plan.protocol, plan.seed, device,
                             frozen=plan.adaptation.mode == "frozen", pretrained=plan.asset.pretrained)
    env.close()
    state = load_weights(store, run_id)
    policy_state = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
    model.policy.load_state_dict(policy_state, strict=True)
    obs_rms = ({"mean": state["obs_rms.mean"].numpy(), "var": state["obs_rms.var"].numpy()}
               if "obs_rms.mean" in state else None)
    agent = PolicyProbs(model.policy, plan.protocol.algo).to(device).eval()
    return agent, normaliser(obs_rms)


def normaliser(obs_rms: dict[str, np.ndarray] | None) -> Callable[[np.ndarray], np.ndarray]:
    """SB3 VecNormalize's observation transform (epsilon 1e-8, clip 10), from the run's stored statistics."""
    if obs_rms is None:
        return lambda obs: obs.astype(np.float32)
    mean, var = obs_rms["mean"], obs_rms["var"]
    return lambda obs: np.clip((obs - mean) / np.sqrt(var + 1e-8), -10.0, 10.0).astype(np.float32)
