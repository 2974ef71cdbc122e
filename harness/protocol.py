"""The standardised recipe a run follows. Part of every run record and of its config hash."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

PROTOCOL_NAMES = ("smoke", "quick", "standard")
BATCHING = ("length-grouped", "random")
PRECISIONS = ("auto", "fp32", "bf16")
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
    # "length-grouped": training batches of rows of similar length, in a shuffled order, when the task reports
    # input lengths (text); rows that all take the same positions (images, fixed clips) batch randomly anyway
    batching: str = "length-grouped"
    # "auto": bf16 autocast on CUDA, fp32 elsewhere; "bf16": bf16 autocast on any device (CPUs with
    # AVX512-BF16/AMX run it fast); "fp32": no autocast anywhere
    precision: str = "auto"
    compile: bool = False  # torch.compile the backbone (opt-in: compiling costs time before the first step)
    train_limit: int | None = None
    dev_limit: int | None = None
    test_limit: int | None = None
    inputs: MappingProxyType | dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layer_mix not in ("last", "weighted"):
            raise ValueError(f"layer_mix must be 'last' or 'weighted', not {self.layer_mix!r}")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}, not {self.batching!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"inputs": dict(self.inputs)}

    def with_changes(self, **changes: Any) -> TrainingProtocol:
        return replace(self, **changes)

    def __reduce__(self) -> tuple[Any, ...]:  # `inputs` is a read-only mapping, which pickle refuses
        return _training_protocol, (self.to_dict(),)


def _training_protocol(fields: dict[str, Any]) -> TrainingProtocol:
    return TrainingProtocol(**fields)
