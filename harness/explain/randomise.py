"""The model-randomisation sanity check (Adebayo et al. 2018): re-initialise the head and the top layers
and attribute again. An explanation that barely changes did not depend on what the model learned."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

RANDOMISATION_SEED = 20181003  # fixed: the check is the same on every run


def reinitialise(modules: Iterable[nn.Module]) -> int:
    """Call reset_parameters() on every submodule that has one; returns how many were reset."""
    count = 0
    for module in modules:
        for sub in module.modules():
            if hasattr(sub, "reset_parameters") and callable(sub.reset_parameters):
                sub.reset_parameters()
                count += 1
            if hasattr(sub, "reset_running_stats") and callable(sub.reset_running_stats):
                sub.reset_running_stats()
    return count


def randomised_task_model(model: nn.Module, top_layers: int = 1) -> tuple[nn.Module, str]:
    """A copy of a TaskModel with its head, layer mix and top `top_layers` backbone layer groups re-initialised."""
    clone = copy.deepcopy(model)
    groups = clone.backbone.layer_groups()[-top_layers:] if top_layers else []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOMISATION_SEED)
        reinitialise([clone.head, *groups])
        with torch.no_grad():
            for name, param in clone.featurizer.named_parameters():
                if name == "logits":  # the learned layer mix goes back to uniform
                    param.zero_()
    clone.eval()
    return clone, f"head, layer mix and the top {top_layers} backbone layer group(s) re-initialised"


def randomised_policy(agent: nn.Module, top_layers: int = 1) -> tuple[nn.Module, str]:
    """A copy of a PolicyProbs with the action head (PPO: policy MLP + action net; DQN: Q head) and the top
    `top_layers` layer groups of the backbone (plus a pixel projection) re-initialised."""
    clone = copy.deepcopy(agent)
    policy = clone.policy
    if clone.algo == "dqn":
        heads = [policy.q_net.q_net]
        extractor = policy.q_net.features_extractor
    else:
        heads = [policy.action_net, policy.mlp_extractor.policy_net]
        extractor = policy.pi_features_extractor
    modules = heads + extractor.backbone.layer_groups()[-top_layers:]
    if getattr(extractor, "pixels", False):
        modules.append(extractor.project)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOMISATION_SEED)
        reinitialise(modules)
    clone.eval()
    return clone, f"action head and the top {top_layers} backbone layer group(s) re-initialised"
