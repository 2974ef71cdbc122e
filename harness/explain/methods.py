"""Which explainer explains a task. The task says so itself: it brings its own (`build_explainer()`) or
names a built-in one (`explainer`), looked up in EXPLAINERS. Declared, never inferred from the task's
class, so a plugin task chooses exactly as a built-in one does."""

from __future__ import annotations

from typing import Any

from harness.errors import UsageError
from harness.explain.audio import AudioExplainer
from harness.explain.base import Explainer, ExplainSettings
from harness.explain.image import ImageExplainer
from harness.explain.policy import ControlExplainer
from harness.explain.text import EntityExplainer, SentenceClassificationExplainer

EXPLAINERS: dict[str, type[Explainer]] = {
    "entity": EntityExplainer,  # token classification: each predicted entity
    "sentence": SentenceClassificationExplainer,  # sequence classification: the predicted class
    "image": ImageExplainer,  # image classification: Grad-CAM
    "audio": AudioExplainer,  # audio classification: time x mel occlusion
    "policy": ControlExplainer,  # control: vector or pixel observations, by the task's observation_kind()
}


def choose_explainer(task: Any, backbone: Any, protocol: Any, settings: ExplainSettings, device: str) -> Explainer:
    """The task's own explainer if it builds one, else the built-in one it names. `backbone` is the rebuilt
    backbone of a supervised run; None for a control run (its backbone lives inside the agent)."""
    own = task.build_explainer(backbone, protocol, settings, device)
    if own is not None:
        return own
    name = task.explainer
    if name is None:
        raise UsageError(f"task '{task.spec.name}' has no explainer: set `explainer` or define build_explainer()")
    if name not in EXPLAINERS:
        raise UsageError(f"task '{task.spec.name}' names an unknown explainer '{name}' "
                         f"(use {', '.join(EXPLAINERS)}, or define build_explainer())")
    return EXPLAINERS[name].for_task(task, backbone, protocol, settings, device)
