"""The task API: what a task declares (TaskSpec), every hook a task may define, and the registry.

Public: plugin authors import from here. Torch-free at import time so `harness list` stays fast.

The whole contract is on `Task` (hooks with their defaults) and the `SupervisedTask` Protocol (what the
supervised loop calls). Base classes own what they fix: a base sets `modality`, `kind` and `metrics`
(what its `compute_metrics` returns), and a task's `TaskSpec` leaves them out; a task that computes more
metrics extends its class's `metrics` (and `compute_metrics`). README.md, "Writing a task", lists it all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from harness.errors import UsageError
from harness.metrics import MetricSpec
from harness.protocol import PROTOCOL_NAMES, TrainingProtocol
from harness.registry import Registry

if TYPE_CHECKING:
    import torch

    from harness.backbones.spec import BackboneSpec

Modality = Literal["text", "image", "audio", "control"]
MODALITIES = ("text", "image", "audio", "control")
SPLITS = ("train", "dev", "test")
__all__ = ["MODALITIES", "SPLITS", "TASKS", "DatasetTask", "Example", "MetricSpec", "StepOutput", "SupervisedTask",
           "Task", "TaskSpec", "get_task", "register_task"]


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, for listings, run records and reports. `modality`, `kind` and `metrics` come from
    the task's base class when left out (the first metric is the primary one)."""

    name: str
    default_backbone: str
    version: str  # bump whenever data, split or scoring changes: results never mix across versions
    modality: Modality | None = None
    kind: str | None = None  # token-classification, sequence-classification, image-classification, control, ...
    metrics: tuple[MetricSpec, ...] = ()
    description: str = ""
    license: str = ""
    citation: str = ""
    data_sources: tuple[str, ...] = ()
    default_protocol: str = "quick"
    default_adapt: str = "full"
    backbone_modality: str | None = None  # when it differs: a control task on rendered frames takes image backbones

    @property
    def backbone_kind(self) -> str:
        return self.backbone_modality or self.modality or ""

    @property
    def primary(self) -> MetricSpec:
        return self.metrics[0]

    def completed(self, modality: str | None, kind: str | None, metrics: tuple[MetricSpec, ...]) -> TaskSpec:
        """This spec with what a base class fixes filled in (a spec's own values win)."""
        return replace(self, modality=self.modality or modality, kind=self.kind or kind,
                       metrics=self.metrics or metrics)

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


class Task:
    """Every hook a task may define, with its default. Subclass a modality base (TokenClassificationTask,
    SequenceClassificationTask, ImageClassificationTask, AudioClassificationTask, ControlTask) rather
    than this class directly: the bases implement the supervised or control contract."""

    spec: ClassVar[TaskSpec]  # required: name, default backbone, version, description, ...
    protocols: ClassVar[Mapping[str, Any]]  # required: one recipe per name in PROTOCOL_NAMES (protocol_table)
    # Fixed by the base class; a task does not restate them.
    modality: ClassVar[Modality | None] = None
    kind: ClassVar[str | None] = None
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()  # what compute_metrics returns, primary first
    # Optional hooks.
    accepts_data_dir: ClassVar[bool] = False  # True: the user may point `--data-dir` at the task's data
    pooled_features: ClassVar[bool] = False  # True: the head sees only a masked mean, so frozen features cache
    explainer: ClassVar[str | None] = None  # the built-in explainer that fits the base ("entity", "image", ...)
    # protocol name -> harness.explain.ExplainSettings, overriding the default explanation budget
    explain_settings: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if isinstance(spec, TaskSpec):  # fill in what the base fixes, once, where the spec is written
            cls.spec = spec.completed(cls.modality, cls.kind, cls.metrics)

    def __init__(self, data_dir: str | None = None) -> None:
        if data_dir is not None and not self.accepts_data_dir:
            raise UsageError(f"task '{self.spec.name}' takes no --data-dir (its data is packaged)")
        self.data_dir = data_dir

    @property
    def labels(self) -> Sequence[str]:
        """The output classes or tags, in head order (empty for control tasks)."""
        return ()

    def data_fingerprint(self) -> str:
        """A digest of the data (files, or an environment's version): part of every run's config hash."""
        raise NotImplementedError

    def build_explainer(self, backbone: Any, protocol: Any, settings: Any, device: str) -> Any | None:
        """A plugin's own explainer (a harness.explain.Explainer); None uses the built-in `explainer`."""
        return None

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The training loss of a batch (supervised tasks). Default: the loss of `step`; the bases compute it
        without building predictions."""
        return self.step(model, batch).loss  # type: ignore[attr-defined]

    def input_lengths(self, rows: list[Example], backbone: Any, protocol: Any) -> list[int] | None:
        """Positions each row takes after collate (supervised tasks). Default: None (every row takes the same
        number of positions, e.g. resized images), so batches are drawn at random."""
        return None


@runtime_checkable
class SupervisedTask(Protocol):
    """What the one supervised loop calls. Nothing in the loop is modality-specific."""

    spec: ClassVar[TaskSpec]
    protocols: ClassVar[Mapping[str, TrainingProtocol]]
    metrics: ClassVar[tuple[MetricSpec, ...]]
    pooled_features: ClassVar[bool]

    @property
    def labels(self) -> Sequence[str]: ...

    def data_fingerprint(self) -> str: ...

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        """The first `limit` examples of a split, in a fixed order."""
        ...

    def build_head(self, backbone: BackboneSpec, feature_dim: int) -> torch.nn.Module: ...

    def collate(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                train: bool = False) -> dict[str, Any]:
        """Batch rows for the backbone: {"ids": [...], "inputs": {...backbone kwargs}, ...targets}."""
        ...

    def collate_targets(self, rows: list[Example]) -> dict[str, Any]:
        """The batch without inputs (ids and targets): used with cached pooled features."""
        ...

    def step(self, model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput:
        """Loss, predictions and references of a batch (evaluation)."""
        ...

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The training loss of a batch, without building predictions (a training step needs none)."""
        ...

    def input_lengths(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol) -> list[int] | None:
        """How many positions each row takes after collate (tokens for text), or None when all rows take
        the same: with lengths, training batches group rows of similar length and evaluation runs in
        length order, so little of what the backbone computes is padding."""
        ...

    def compute_metrics(self, preds: list[Any], refs: list[Any]) -> dict[str, float]:
        """Every metric in `metrics`, by name."""
        ...


class DatasetTask(Task):
    """Base for tasks whose data is a fixed train/dev/test split held in memory.

    Subclasses set `spec`, `protocols`, `label_names` and implement `read_splits()` and
    `data_fingerprint()`. `data_dir` is where the user keeps the data (`harness run --data-dir`), for
    tasks whose data is not packaged; tasks that need none leave `accepts_data_dir` False.
    """

    label_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_dir: str | None = None) -> None:
        super().__init__(data_dir)
        self._splits: dict[str, list[Example]] | None = None

    @property
    def labels(self) -> Sequence[str]:
        return self.label_names

    def read_splits(self) -> dict[str, list[Example]]:
        """Every split's examples, in a fixed order."""
        raise NotImplementedError

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}' (use {', '.join(SPLITS)})")
        if self._splits is None:
            self._splits = self.read_splits()
        rows = self._splits[split]
        return rows if limit is None else rows[:limit]

    def collate_targets(self, rows: list[Example]) -> dict[str, Any]:
        raise NotImplementedError(f"task '{self.spec.name}' does not batch targets apart from inputs")

    def step(self, model: torch.nn.Module, batch: dict[str, Any]) -> StepOutput:
        raise NotImplementedError


def _validate_task(name: str, obj: Any) -> Any:
    spec = getattr(obj, "spec", None)  # any object may sit behind an entry point: checked, not assumed
    if not isinstance(spec, TaskSpec):
        raise UsageError(f"task '{name}' ({obj!r}) has no `spec: TaskSpec` attribute")
    if spec.name != name:
        raise UsageError(f"task entry point '{name}' points to a task whose spec.name is '{spec.name}'")
    if spec.modality not in MODALITIES:
        raise UsageError(f"task '{name}': modality must be one of {MODALITIES}, not {spec.modality!r} "
                         "(subclass a modality base, or set it in the TaskSpec)")
    if not spec.metrics:
        raise UsageError(f"task '{name}' declares no metrics (subclass a base that computes some, or set them)")
    _check_metrics(name, spec, getattr(obj, "metrics", ()))
    _check_protocols(name, getattr(obj, "protocols", {}))
    return obj


def _check_metrics(name: str, spec: TaskSpec, computed: tuple[MetricSpec, ...]) -> None:
    """A spec may only name metrics its task computes, with the same direction."""
    if not computed:
        return  # a task on no base: what it computes is known only when it runs (checked there)
    by_name = {m.name: m for m in computed}
    for metric in spec.metrics:
        known = by_name.get(metric.name)
        if known is None:
            raise UsageError(f"task '{name}': metric '{metric.name}' is not computed by the task "
                             f"(it computes {', '.join(by_name)})")
        if known.higher_is_better != metric.higher_is_better:
            raise UsageError(f"task '{name}': metric '{metric.name}' is declared with the opposite direction")


def _check_protocols(name: str, protocols: Mapping[str, Any]) -> None:
    missing = [p for p in PROTOCOL_NAMES if p not in protocols]
    if missing:
        raise UsageError(f"task '{name}' defines no protocol {', '.join(missing)}")
    for key, protocol in protocols.items():
        if getattr(protocol, "name", key) != key:
            raise UsageError(f"task '{name}': protocol '{key}' is named '{protocol.name}' "
                             "(build the table with harness.protocol.protocol_table)")


# Task files join the registry as a named plugin source, resolved on first scan like an entry point: the task
# API never imports the task-file machinery (harness.taskfiles builds on these bases, one floor up).
TASKS: Registry[type] = Registry("task", "harness.tasks", validate=_validate_task,
                                 special_origin="harness.taskfiles.discovery:entry_point_file",
                                 scanners=("harness.taskfiles.discovery:scan",))


def register_task(cls: type) -> type:
    """Class decorator: register a task class under `cls.spec.name`."""
    _validate_task(cls.spec.name, cls)
    TASKS.add(cls.spec.name, cls)
    return cls


def get_task(name: str) -> Any:
    """An instance of the registered task `name`."""
    return TASKS.get(name)()
