"""What every explainer provides, whatever the modality, and the settings that bound its cost.

An explainer turns test examples into `Item`s (one explained output each: a predicted class, a predicted
entity, a chosen action), attributes that output to *units* of the input (words, image cells, time x mel
blocks, observation dimensions), and scores the model on inputs with some units replaced by a baseline.
The faithfulness numbers, the randomisation check and the storage are shared (runner.py); which explainer
a task gets is methods.py's table, and which examples it explains is sampling.py's seeded draw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.task import Example

SCORE_BATCH = 64


@dataclass(frozen=True)
class ExplainSettings:
    """How much explaining a run gets, per protocol: the cost bound. Not part of the run's config hash:
    explaining never changes a run's identity or metrics."""

    examples: int  # items explained (examples, or predicted entities for NER, or states for control)
    ig_steps: int = 32  # integrated-gradients path steps
    random_rankings: int = 3  # random rankings per item, the reference for deletion/insertion
    grid: int = 8  # pixel control: each stacked frame is occluded in grid x grid cells
    mel_block: int = 10  # audio occlusion block: mel bins ...
    time_block: int = 10  # ... x frames (10 ms each)
    visuals: int = 4  # example visuals kept per run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EXPLAIN_SETTINGS = {
    "smoke": ExplainSettings(examples=3, ig_steps=8, random_rankings=2, visuals=2),
    "quick": ExplainSettings(examples=24, ig_steps=32, random_rankings=3),
    "standard": ExplainSettings(examples=100, ig_steps=50, random_rankings=5, visuals=6),
}


def settings_for(task: Any, protocol: str) -> ExplainSettings:
    """A task may override the defaults with its own `explain_settings` mapping (protocol -> settings). A derived
    protocol ("smoke+bf16") takes its base protocol's settings."""
    for name in (protocol, protocol.split("+")[0]):
        chosen = task.explain_settings.get(name) or EXPLAIN_SETTINGS.get(name)
        if chosen is not None:
            return chosen
    return EXPLAIN_SETTINGS["quick"]


@dataclass
class Item:
    """One explained output of one example."""

    id: str  # the example id (NER: the sentence id and the entity's word span)
    target: int  # index of the explained output (class, action); -1 when the target is a custom function
    label: str  # what is explained, in words: "positive", "PER 'john smith'", "push right"
    inputs: Any  # what the model is called on, a batch of one
    units: list[str]  # a name per unit
    display: dict[str, Any] = field(default_factory=dict)  # what summaries and visuals need


@dataclass
class Attribution:
    units: np.ndarray  # one value per unit (signed: evidence for the explained output)
    map: np.ndarray | None = None  # a finer map for visuals (image heat map, time x mel map)
    # integrated gradients only: |sum of attributions - (F(input) - F(baseline))| / |F(input) - F(baseline)|,
    # how far the path integral's approximation is from complete (more steps shrink it)
    completeness_gap: float | None = None


def completeness_gap(attributions: Any, delta: Any) -> float:
    """The relative completeness error of integrated gradients from captum's convergence delta
    (delta = sum of attributions - (F(input) - F(baseline)))."""
    total = float(attributions.detach().float().sum().cpu())
    delta = float(torch.as_tensor(delta).detach().float().sum().cpu())  # a batch of one: one delta
    return abs(delta) / max(abs(total - delta), 1e-8)


class Explainer(ABC):
    method: str = ""
    unit: str = ""
    target: str = "the predicted class"

    def __init__(self, settings: ExplainSettings, device: str = "cpu"):
        self.settings = settings
        self.device = device

    @classmethod
    def for_task(cls, task: Any, backbone: Any, protocol: Any, settings: ExplainSettings, device: str) -> Explainer:
        """Build this explainer for one run of `task` (what methods.py's table calls). The supervised families
        take exactly these arguments; a family that needs others, or picks a variant, overrides this."""
        return cls(task, backbone, protocol, settings, device)

    def candidates(self, rows: list[Example],
                   stored_predictions: Callable[[], Iterable[dict[str, Any]]]) -> list[Example]:
        """The test examples the explained sample may be drawn from (kept in order): all of them, unless the
        explainer can explain only some. `stored_predictions` reads the run's stored predictions when called,
        so runs whose explainer does not need them never read them."""
        return rows

    @abstractmethod
    def items(self, model: Any, examples: list[Any]) -> list[Item]:
        """The outputs to explain, as predicted by `model` (the trained one)."""

    @abstractmethod
    def attribute(self, model: Any, item: Item) -> Attribution: ...

    @abstractmethod
    def scores(self, model: Any, item: Item, keep: np.ndarray) -> np.ndarray:
        """The explained output's probability with the units where keep is False set to the baseline."""

    @abstractmethod
    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]: ...

    def visuals(self, items: list[Item], attributions: list[Attribution], out: Path) -> list[dict[str, Any]]:
        """Example visuals written under `out` (PNG files) or described inline (token highlights)."""
        return []

    def item_record(self, item: Item, attribution: Attribution) -> dict[str, Any]:
        """What explanation.json keeps per item, beside the faithfulness numbers."""
        return {"units": item.units, "attributions": [round(float(v), 6) for v in attribution.units]}


def batched_scores(forward: Any, variants: torch.Tensor, batch_size: int = SCORE_BATCH) -> np.ndarray:
    """Run `forward` (a batch -> [batch] scores) over many input variants, without gradients."""
    out = []
    with torch.no_grad():
        for start in range(0, variants.shape[0], batch_size):
            out.append(forward(variants[start:start + batch_size]).detach().float().cpu())
    return torch.cat(out).numpy()


def normalised(values: np.ndarray) -> np.ndarray:
    """Attributions divided by their total magnitude, so examples weigh equally in averages."""
    total = float(np.abs(values).sum())
    return values / total if total > 0 else values
