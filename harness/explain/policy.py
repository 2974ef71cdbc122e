"""Control: what in the observation drives the chosen action.

The explained output is the probability of the action the trained agent takes: PPO's action distribution,
or for DQN the softmax of the Q-values (a Boltzmann reading of the greedy choice). States come from
evaluation episodes seeded apart from training and from the run's own evaluation (sampling.py).

- vector observations: integrated gradients (captum) over the observation dimensions, in the network's
  input space (after the run's observation normalisation, if any), baseline 0 (the normalised mean, or
  the all-zero state: cart centred, pole upright, at rest);
- pixel observations: occlusion (captum) of grid cells of each stacked frame by the frame's background
  colour (its per-channel median).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.explain.base import (
    Attribution,
    Explainer,
    ExplainSettings,
    Item,
    batched_scores,
    completeness_gap,
    normalised,
)
from harness.explain.image import cell_masks
from harness.explain.visuals import dimension_bars_figure, heat_overlay_figure


class PolicyProbs(nn.Module):
    """An SB3 policy as a function observation batch -> action probabilities."""

    def __init__(self, policy: nn.Module, algo: str):
        super().__init__()
        self.policy = policy
        self.algo = algo

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.algo == "dqn":
            return self.policy.q_net(observations).float().softmax(-1)
        return self.policy.get_distribution(observations).distribution.probs.float()


class ControlExplainer(Explainer):
    """What the two control explainers share: states in, the chosen action explained. The table in methods.py
    names this family; `for_task` picks the variant the task's observations need."""

    target = "the chosen action (its probability; DQN: softmax of the Q-values)"

    def __init__(self, task: Any, settings: ExplainSettings, device: str = "cpu"):
        super().__init__(settings, device)
        self.task = task

    @classmethod
    def for_task(cls, task: Any, backbone: Any, protocol: Any, settings: ExplainSettings,
                 device: str) -> Explainer:
        """Occlusion for pixel observations, integrated gradients for vector ones (the backbone lives in the
        agent, so none is needed here)."""
        variant = PixelControlExplainer if task.observation_kind() == "pixels" else VectorControlExplainer
        return variant(task, settings, device)

    def action_name(self, action: int) -> str:
        names = self.task.action_names
        return names[action] if action < len(names) else f"action {action}"

    def items(self, model: Any, examples: list[Any]) -> list[Item]:
        items = []
        for i, state in enumerate(examples):
            obs = torch.as_tensor(state, dtype=torch.float32, device=self.device)[None]
            with torch.no_grad():
                action = int(model(obs).argmax(-1)[0])
            items.append(Item(f"state-{i:03d}", action, self.action_name(action), obs, self.unit_names(obs),
                              {"group": self.action_name(action)}))
        return items

    def unit_names(self, obs: torch.Tensor) -> list[str]:
        raise NotImplementedError


class VectorControlExplainer(ControlExplainer):
    method = "integrated gradients over the observation dimensions (captum IntegratedGradients), baseline 0"
    unit = "observation dimension"

    def unit_names(self, obs: torch.Tensor) -> list[str]:
        names = self.task.observation_names
        return [names[i] if i < len(names) else f"obs[{i}]" for i in range(obs.shape[-1])]

    def attribute(self, model: Any, item: Item) -> Attribution:
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(model)
        values, delta = ig.attribute(item.inputs, baselines=torch.zeros_like(item.inputs), target=item.target,
                                     n_steps=self.settings.ig_steps, return_convergence_delta=True)
        return Attribution(values[0].detach().float().cpu().numpy(), completeness_gap=completeness_gap(values, delta))

    def scores(self, model: Any, item: Item, keep: np.ndarray) -> np.ndarray:
        variants = item.inputs * torch.as_tensor(keep, dtype=torch.float32, device=item.inputs.device)
        return batched_scores(lambda v: model(v)[:, item.target], variants)

    def item_record(self, item: Item, attribution: Attribution) -> dict[str, Any]:
        observation = np.round(item.inputs[0].cpu().numpy(), 5).tolist()
        return super().item_record(item, attribution) | {"observation": observation}

    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]:
        """Per chosen action: each observation dimension's mean share of the attribution (signed) and of its
        magnitude, ranked by magnitude."""
        by_action: dict[str, list[np.ndarray]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            by_action[item.label].append(normalised(attribution.units))
        names = items[0].units if items else []
        groups = {}
        for action, stack in sorted(by_action.items()):
            signed, magnitude = np.mean(stack, axis=0), np.mean(np.abs(stack), axis=0)
            order = np.argsort(-magnitude, kind="stable")
            groups[action] = {"items": len(stack), "dimensions": [
                {"name": names[j], "mean_share": round(float(signed[j]), 4),
                 "magnitude_share": round(float(magnitude[j]), 4)}
                for j in order]}
        return {"kind": "observation_dimensions", "by": "chosen action", "groups": groups}

    def visuals(self, items: list[Item], attributions: list[Attribution], out: Path) -> list[dict[str, Any]]:
        summary = self.summarise(items, attributions)
        dimension_bars_figure(summary["groups"], out / "dimensions.png")
        return [{"kind": "image", "file": "dimensions.png", "id": "", "label": "per action",
                 "caption": "mean share of the attribution per observation dimension, per chosen action"}]


class PixelControlExplainer(ControlExplainer):
    method = "occlusion of grid cells of each stacked frame by its background colour (captum FeatureAblation)"

    def __init__(self, task: Any, settings: ExplainSettings, device: str = "cpu"):
        super().__init__(task, settings, device)
        self.unit = f"frame cell ({settings.grid}x{settings.grid} grid per stacked frame)"

    def unit_names(self, obs: torch.Tensor) -> list[str]:
        grid = self.settings.grid
        return [f"frame {f} r{r} c{c}" for f in range(obs.shape[1]) for r in range(grid) for c in range(grid)]

    def _background(self, obs: torch.Tensor) -> torch.Tensor:
        colour = obs[0].flatten(0, 2).median(0).values  # per channel over frames and pixels
        return colour.view(1, 1, 1, 1, -1).expand_as(obs)

    def _masks(self, obs: torch.Tensor) -> torch.Tensor:
        """[units, frames, H, W] masks of the occlusion windows, in captum's order (frame-major)."""
        frames, height, width = obs.shape[1:4]
        cells = cell_masks(height, width, self.settings.grid).to(obs.device)
        masks = torch.zeros(frames * cells.shape[0], frames, height, width, device=obs.device)
        for f in range(frames):
            masks[f * cells.shape[0]:(f + 1) * cells.shape[0], f] = cells
        return masks

    def attribute(self, model: Any, item: Item) -> Attribution:
        from captum.attr import FeatureAblation

        obs = item.inputs
        masks = self._masks(obs)
        # Occlusion by exactly the cells the faithfulness curves remove: a feature mask of cell ids, shared
        # by a cell's colour channels (sliding windows would not tile frames whose size the grid does not divide).
        cell_ids = masks.argmax(0)[None, ..., None].expand_as(obs)
        values = FeatureAblation(model).attribute(obs, baselines=self._background(obs), target=item.target,
                                                  feature_mask=cell_ids, perturbations_per_eval=16)
        values = values[0].detach().float().mean(-1)  # [F, H, W]
        per_unit = (masks * values).sum((1, 2, 3)) / masks.sum((1, 2, 3)).clamp(min=1)
        grid = self.settings.grid
        return Attribution(per_unit.cpu().numpy(), per_unit.view(obs.shape[1], grid, grid).cpu().numpy())

    def scores(self, model: Any, item: Item, keep: np.ndarray) -> np.ndarray:
        obs = item.inputs
        masks = self._masks(obs)
        kept = (torch.as_tensor(keep, dtype=torch.float32, device=obs.device) @ masks.flatten(1))
        kept = kept.view(len(keep), *obs.shape[1:4], 1)
        variants = obs * kept + self._background(obs) * (1 - kept)
        return batched_scores(lambda v: model(v)[:, item.target], variants, batch_size=16)

    def item_record(self, item: Item, attribution: Attribution) -> dict[str, Any]:
        return super().item_record(item, attribution) | {"cell_map": np.round(attribution.map, 6).tolist()}

    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]:
        """Per chosen action: the average cell map of each stacked frame, and each frame's share."""
        by_action: dict[str, list[np.ndarray]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            by_action[item.label].append(normalised(attribution.map))
        groups = {}
        for action, stack in sorted(by_action.items()):
            mean = np.mean(stack, axis=0)
            frame_share = np.abs(mean).sum((1, 2)) / max(np.abs(mean).sum(), 1e-12)
            groups[action] = {"items": len(stack), "mean_cell_maps": np.round(mean, 5).tolist(),
                              "frame_share": np.round(frame_share, 4).tolist()}
        return {"kind": "frame_cells", "by": "chosen action", "groups": groups}

    def visuals(self, items: list[Item], attributions: list[Attribution], out: Path) -> list[dict[str, Any]]:
        shown = []
        for i, (item, attribution) in enumerate(list(zip(items, attributions, strict=True))[:self.settings.visuals]):
            frame = item.inputs[0, -1].cpu().numpy() / 255.0  # the newest frame
            name = f"occlusion-{i}.png"
            heat_overlay_figure(frame, attribution.map[-1], f"{item.label}: newest frame", out / name, signed=True)
            shown.append({"kind": "image", "file": name, "id": item.id, "label": item.label,
                          "caption": "occlusion map on the newest frame (drop in the action's probability)"})
        return shown
