"""The standardised recipe a run follows. Part of every run record and of its config hash."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

PROTOCOL_NAMES = ("smoke", "quick", "standard")
P = TypeVar("P")


def protocol_table(**profiles: P) -> dict[str, P]:
    """A task's protocols keyed by name, each named once: `protocol_table(smoke=TrainingProtocol(...), ...)`."""
    return {name: replace(profile, name=name) for name, profile in profiles.items()}  # type: ignore[type-var]


@dataclass(frozen=True)
class TrainingProtocol:
    """One named profile of the supervised recipe.

    `smoke` runs in seconds (tests), `quick` in minutes on a 2-core CPU, `standard` is the official
    recipe sized for one GPU. `inputs` carries modality settings the task's collate reads
    (max_length for text, image size for vision, ...). `*_limit` cap each split; None = the whole split.
    """

    name: str = ""  # set by protocol_table
    _: KW_ONLY
    epochs: int
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 5e-5  # backbone learning rate (when it trains)
    head_lr: float = 1e-3  # head and layer-mix learning rate
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0
    layer_mix: str = "last"  # "last" layer or a learned softmax-"weighted" mix of all layers
    train_limit: int | None = None
    dev_limit: int | None = None
    test_limit: int | None = None
    inputs: MappingProxyType | dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layer_mix not in ("last", "weighted"):
            raise ValueError(f"layer_mix must be 'last' or 'weighted', not {self.layer_mix!r}")
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"inputs": dict(self.inputs)}

    def with_changes(self, **changes: Any) -> TrainingProtocol:
        return replace(self, **changes)

    def __reduce__(self) -> tuple[Any, ...]:  # `inputs` is a read-only mapping, which pickle refuses
        return _training_protocol, (self.to_dict(),)


def _training_protocol(fields: dict[str, Any]) -> TrainingProtocol:
    return TrainingProtocol(**fields)
