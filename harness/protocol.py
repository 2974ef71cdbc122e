"""The standardised recipe a run follows. Part of every run record and of its config hash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

PROTOCOL_NAMES = ("smoke", "quick", "standard")
BATCHING = ("length-grouped", "random")
PRECISIONS = ("auto", "fp32", "bf16")
# Fields a protocol's search space may vary (harness tune): the learning rates, epochs and weight decay
TUNABLE = ("lr", "head_lr", "epochs", "weight_decay")
# The built-in tasks' grids (`harness tune`): the backbone's and the head's learning rates around each recipe's
# own (a frozen backbone drops lr: 2-3 trials; a trained one gets the product: 6). Smoke grids are for tests.
SEARCH_TEXT = {"lr": (3e-5, 1e-4, 3e-4), "head_lr": (1e-3, 3e-3)}
SEARCH_IMAGE = {"lr": (3e-4, 1e-3, 3e-3), "head_lr": (1e-3, 3e-3)}
SEARCH_AUDIO = {"lr": (3e-5, 1e-4), "head_lr": (1e-3, 3e-3, 1e-2)}
SEARCH_SMOKE = {"lr": (1e-4, 3e-4), "head_lr": (1e-3, 3e-3)}
P = TypeVar("P")


def channels_last_on_cpu(modality: str | None, pooled_features: bool) -> bool:
    """Whether a supervised CPU run holds its backbone and images channels-last (NHWC): image backbones do
    (EfficientNet-Lite0 at 128 px, measured: training steps 1.5x and inference 1.75x faster through oneDNN's
    NHWC kernels), except a head on cached frozen features, whose features are computed as before so the
    cache stays valid. The device settings apply it; planning records it in the run's configuration."""
    return modality == "image" and not pooled_features


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
    # The small grid `harness tune` searches, e.g. {"lr": (3e-5, 1e-4, 3e-4)}: a recipe for choosing a run's
    # settings, not one of them, so it is not in `to_dict()` (a run's configuration and hash). A tuned run
    # records the grid and its choice instead.
    search: MappingProxyType | dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.layer_mix not in ("last", "weighted"):
            raise ValueError(f"layer_mix must be 'last' or 'weighted', not {self.layer_mix!r}")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}, not {self.batching!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "search", MappingProxyType(check_search_space(self.search)))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "search"} | {
            "inputs": dict(self.inputs)}

    def with_changes(self, **changes: Any) -> TrainingProtocol:
        return replace(self, **changes)

    def __reduce__(self) -> tuple[Any, ...]:  # `inputs` is a read-only mapping, which pickle refuses
        return _training_protocol, (self.to_dict(), {k: list(v) for k, v in self.search.items()})


def _training_protocol(fields: dict[str, Any], search: dict[str, list[Any]] | None = None) -> TrainingProtocol:
    return TrainingProtocol(**fields, search=search or {})


def check_search_space(space: Any) -> dict[str, tuple[Any, ...]]:
    """A search space as {field: (values...)}: only TUNABLE fields, each with distinct positive values (whole
    numbers for epochs), in the order given. ValueError saying what is wrong."""
    if not isinstance(space, Mapping):
        raise ValueError(f"a search space maps fields to lists of values, not {type(space).__name__}")
    checked = {}
    for name, values in space.items():
        if name not in TUNABLE:
            raise ValueError(f"search space: '{name}' cannot be tuned (tunable: {', '.join(TUNABLE)})")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"search space: '{name}' needs a non-empty list of values")
        kind = int if name == "epochs" else (int, float)
        if any(isinstance(v, bool) or not isinstance(v, kind) or v < 0 or (v == 0 and name != "weight_decay")
               for v in values):
            what = "whole numbers of at least 1" if name == "epochs" else "positive numbers"
            raise ValueError(f"search space: '{name}' takes {what}, got {list(values)}")
        if len(set(values)) != len(values):
            raise ValueError(f"search space: '{name}' lists a value twice: {list(values)}")
        checked[name] = tuple(values)
    return checked
