"""`mountaincar`: MountainCar-v0 (gymnasium classic control), DQN with the RL-Zoo hyperparameters.

Protocols `quick`/`standard` = rl-baselines3-zoo `hyperparams/dqn.yml`, MountainCar-v0 ("Tuned"):
1.2e5 steps, lr 4e-3, batch 128, buffer 10000, learning_starts 1000, gamma 0.98,
target_update_interval 600, train_freq 16, gradient_steps 8, exploration_fraction 0.2, final eps 0.07,
net_arch [256, 256] (here: the 256-256 ReLU MLP backbone, then the linear Q head). Returns are -200..0.
"""

from __future__ import annotations

from typing import ClassVar

from harness.control_tasks import ControlProtocol, ControlTask
from harness.protocol import protocol_table
from harness.task import TaskSpec, register_task

ZOO_DQN = {"learning_rate": 4e-3, "batch_size": 128, "buffer_size": 10_000, "learning_starts": 1000, "gamma": 0.98,
           "target_update_interval": 600, "train_freq": 16, "gradient_steps": 8, "exploration_fraction": 0.2,
           "exploration_final_eps": 0.07}
MLP = {"hidden": [256, 256], "activation": "relu"}


@register_task
class MountainCarTask(ControlTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="mountaincar", default_backbone="mlp",
        version="1", description="MountainCar-v0, DQN (RL-Zoo hyperparameters), IQM over 20 evaluation episodes",
        license="MIT (gymnasium)", citation="Moore 1990; RL Baselines3 Zoo (Raffin 2020)",
        data_sources=("gymnasium MountainCar-v0",),
    )
    env_id: ClassVar[str] = "MountainCar-v0"
    observation_names: ClassVar[tuple[str, ...]] = ("position", "velocity")
    action_names: ClassVar[tuple[str, ...]] = ("accelerate left", "no push", "accelerate right")
    protocols: ClassVar[dict[str, ControlProtocol]] = protocol_table(
        smoke=ControlProtocol(algo="dqn", total_timesteps=1000, hyperparams=ZOO_DQN | {"learning_starts": 100},
                              backbone=MLP, threads=1, eval_episodes=3),
        quick=ControlProtocol(algo="dqn", total_timesteps=120_000, hyperparams=ZOO_DQN, backbone=MLP, threads=1),
        standard=ControlProtocol(algo="dqn", total_timesteps=120_000, hyperparams=ZOO_DQN, backbone=MLP, threads=1,
                                 eval_episodes=100),
    )
