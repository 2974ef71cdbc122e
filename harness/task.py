"""The task API: what a task declares (TaskSpec) and what a supervised task implements.

Public: plugin authors import from here. Torch-free at import time so `harness list` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from harness.errors import UsageError
from harness.protocol import PROTOCOL_NAMES, TrainingProtocol
from harness.registry import Registry

if TYPE_CHECKING:
    import torch

    from harness.backbones.spec import BackboneSpec

Modality = Literal["text", "image", "audio", "control"]
MODALITIES = ("text", "image", "audio", "control")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool = True
    description: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    modality: Modality
    kind: str  # token-classification, sequence-classification, image-classification, control, ...
    metrics: tuple[MetricSpec, ...]  # the first is the primary metric
    default_backbone: str
    version: str  # bump whenever data, split or scoring changes: results never mix across versions
    description: str = ""
    license: str = ""
    citation: str = ""
    data_sources: tuple[str, ...] = ()
    default_protocol: str = "quick"
    default_adapt: str = "full"
    backbone_modality: str | None = None  # when it differs: a control task on rendered frames takes image backbones

    @property
    def backbone_kind(self) -> str:
        return self.backbone_modality or self.modality

    @property
    def primary(self) -> MetricSpec:
        return self.metrics[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modality": self.modality,
            "kind": self.kind,
            "version": self.version,
            "primary_metric": self.primary.name,
            "metrics": [m.name for m in self.metrics],
            "default_backbone": self.default_backbone,
            "default_protocol": self.default_protocol,
            "default_adapt": self.default_adapt,
            "description": self.description,
            "license": self.license,
            "citation": self.citation,
            "data_sources": list(self.data_sources),
        }


@dataclass
class Example:
    """One input with its reference. `id` is stable across runs (predictions are paired by it)."""

    id: str
    input: Any
    target: Any


@dataclass
class StepOutput:
    loss: torch.Tensor
    preds: list[Any] = field(default_factory=list)  # one JSON-able prediction per example
    refs: list[Any] = field(default_factory=list)  # the matching references


@runtime_checkable
class SupervisedTask(Protocol):
    """What the one supervised loop needs from a task. Nothing in the loop is modality-specific."""

    spec: ClassVar[TaskSpec]
    protocols: ClassVar[Mapping[str, TrainingProtocol]]

    @property
    def labels(self) -> Sequence[str]: ...

    def data_fingerprint(self) -> str:
        """A digest of the data files: part of the config hash."""
        ...

    def load_split(self, split: str, limit: int | None = None) -> list[Example]: ...

    def build_head(self, backbone: BackboneSpec, feature_dim: int) -> torch.nn.Module: ...

    def collate(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                train: bool = False) -> dict[str, Any]:
        """Batch rows for the backbone: {"ids": [...], "inputs": {...backbone kwargs}, ...targets}."""
        ...

    def step(self, model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput: ...

    def compute_metrics(self, preds: list[Any], refs: list[Any]) -> dict[str, float]: ...


SPLITS = ("train", "dev", "test")


class DatasetTask:
    """Base for tasks whose data is a fixed train/dev/test split held in memory.

    Subclasses set `spec`, `protocols`, `label_names` and implement `read_splits()` and
    `data_fingerprint()`. `data_dir` is where the user keeps the data (`harness run --data-dir`), for
    tasks whose data is not packaged; tasks that need none leave `accepts_data_dir` False.
    """

    spec: ClassVar[TaskSpec]
    protocols: ClassVar[Mapping[str, TrainingProtocol]]
    label_names: ClassVar[tuple[str, ...]] = ()
    accepts_data_dir: ClassVar[bool] = False
    # True when the head only sees a masked mean over positions: frozen features can then be cached pooled.
    pooled_features: ClassVar[bool] = False

    def __init__(self, data_dir: str | None = None) -> None:
        if data_dir is not None and not self.accepts_data_dir:
            raise UsageError(f"task '{self.spec.name}' takes no --data-dir (its data is packaged)")
        self.data_dir = data_dir
        self._splits: dict[str, list[Example]] | None = None

    @property
    def labels(self) -> Sequence[str]:
        return self.label_names

    def read_splits(self) -> dict[str, list[Example]]:
        """Every split's examples, in a fixed order."""
        raise NotImplementedError

    def data_fingerprint(self) -> str:
        raise NotImplementedError

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}' (use {', '.join(SPLITS)})")
        if self._splits is None:
            self._splits = self.read_splits()
        rows = self._splits[split]
        return rows if limit is None else rows[:limit]


def _validate_task(name: str, obj: Any) -> Any:
    spec = getattr(obj, "spec", None)
    if not isinstance(spec, TaskSpec):
        raise UsageError(f"task '{name}' ({obj!r}) has no `spec: TaskSpec` attribute")
    if spec.name != name:
        raise UsageError(f"task entry point '{name}' points to a task whose spec.name is '{spec.name}'")
    if spec.modality not in MODALITIES:
        raise UsageError(f"task '{name}': modality must be one of {MODALITIES}, not {spec.modality!r}")
    protocols = getattr(obj, "protocols", {})
    missing = [p for p in PROTOCOL_NAMES if p not in protocols]
    if missing:
        raise UsageError(f"task '{name}' defines no protocol {', '.join(missing)}")
    return obj


TASKS: Registry[type] = Registry("task", "harness.tasks", validate=_validate_task)


def register_task(cls: type) -> type:
    """Class decorator: register a task class under `cls.spec.name`."""
    _validate_task(cls.spec.name, cls)
    TASKS.add(cls.spec.name, cls)
    return cls


def get_task(name: str) -> Any:
    """An instance of the registered task `name`."""
    return TASKS.get(name)()
