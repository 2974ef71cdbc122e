"""The task API for reinforcement learning: environments, the algorithm recipe, evaluation protocol.

A control task names a gymnasium environment (`make_env`), the stable-baselines3 algorithm and its
hyperparameters per protocol (published RL-Zoo settings where they exist), and how many evaluation
episodes to run. The harness contributes the backbone as the policy's feature extractor, the
seeding, the evaluation on separately seeded environments, the statistics and the run record.
Torch-free at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from harness.errors import UsageError
from harness.metrics import CONTROL_METRICS, MetricSpec
from harness.task import Modality, Task, TaskSpec

ALGORITHMS = ("ppo", "dqn")
__all__ = ["ALGORITHMS", "CONTROL_METRICS", "ControlProtocol", "ControlTask"]


@dataclass(frozen=True)
class ControlProtocol:
    """One named RL recipe. `hyperparams` go to the stable-baselines3 algorithm unchanged, except a
    value ["linear", x] becomes a schedule decaying linearly from x to 0 (RL-Zoo's `lin_x`).
    `backbone` carries backbone settings: MLP widths and activation, or image size and frame stack."""

    name: str = ""  # set by protocol_table
    _: KW_ONLY
    algo: str
    total_timesteps: int
    n_envs: int = 1
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    backbone: Mapping[str, Any] = field(default_factory=dict)
    eval_episodes: int = 20
    normalize_obs: bool = False
    # torch threads while training (None: torch's default). Small MLP policies train several times faster on
    # one thread: with more, synchronising threads costs more than their tiny matrix products gain.
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {ALGORITHMS}, not {self.algo!r}")
        if self.eval_episodes < 1 or self.total_timesteps < 1:
            raise ValueError("eval_episodes and total_timesteps must be positive")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive number or None, not {self.threads!r}")
        object.__setattr__(self, "hyperparams", MappingProxyType(dict(self.hyperparams)))
        object.__setattr__(self, "backbone", MappingProxyType(dict(self.backbone)))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return d | {"hyperparams": dict(self.hyperparams), "backbone": dict(self.backbone)}


class ControlTask(Task):
    """Base for RL tasks. Subclasses set `spec`, `protocols`, `env_id`, and may override `make_env`
    (wrappers: rendering, frame stacking) and `observation_kind`."""

    spec: ClassVar[TaskSpec]
    protocols: ClassVar[Mapping[str, ControlProtocol]]
    modality: ClassVar[Modality] = "control"
    kind: ClassVar[str] = "control"
    metrics: ClassVar[tuple[MetricSpec, ...]] = CONTROL_METRICS
    explainer: ClassVar[str] = "policy"
    env_id: ClassVar[str]
    env_kwargs: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    # Names for explanations and reports (optional): one per observation dimension, one per discrete action.
    observation_names: ClassVar[tuple[str, ...]] = ()
    action_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_dir: str | None = None) -> None:
        if data_dir is not None:
            raise UsageError(f"task '{self.spec.name}' takes no --data-dir (it is a simulated environment)")
        super().__init__(data_dir)

    def make_env(self, protocol: ControlProtocol | None = None, render: bool = False) -> Any:
        """One environment; `protocol` carries observation settings (image size, frame stack)."""
        import gymnasium as gym

        kwargs = dict(self.env_kwargs) | ({"render_mode": "rgb_array"} if render else {})
        return gym.make(self.env_id, **kwargs)

    def data_fingerprint(self) -> str:
        """An environment's 'data' is its code: the gymnasium id and version pin it."""
        from importlib import metadata

        return f"gymnasium=={metadata.version('gymnasium')}:{self.env_id}"

    def observation_kind(self) -> str:
        """"vector" (the observation is a flat array) or "pixels" (stacked rendered frames)."""
        return "vector"

