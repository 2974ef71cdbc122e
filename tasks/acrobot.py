"""`acrobot`: Acrobot-v1 (gymnasium classic control), DQN with the RL-Zoo hyperparameters.

Protocols `quick`/`standard` = rl-baselines3-zoo `hyperparams/dqn.yml`, Acrobot-v1 ("Tuned"): 1e5 steps,
lr 6.3e-4, batch 128, buffer 50000, learning_starts 0, gamma 0.99, target_update_interval 250,
train_freq 4, gradient_steps -1, exploration_fraction 0.12, final eps 0.1, net_arch [256, 256]
(here: the 256-256 ReLU MLP backbone, then the linear Q head). Returns are -500..0 (higher is better).
"""

from __future__ import annotations

from typing import ClassVar

from harness.control_tasks import ControlProtocol, ControlTask
from harness.protocol import protocol_table
from harness.task import TaskSpec, register_task

ZOO_DQN = {"learning_rate": 6.3e-4, "batch_size": 128, "buffer_size": 50_000, "learning_starts": 0, "gamma": 0.99,
           "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1, "exploration_fraction": 0.12,
           "exploration_final_eps": 0.1}
MLP = {"hidden": [256, 256], "activation": "relu"}


@register_task
class AcrobotTask(ControlTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="acrobot", default_backbone="mlp",
        version="1", description="Acrobot-v1 swing-up, DQN (RL-Zoo hyperparameters), IQM over 20 evaluation episodes",
        license="MIT (gymnasium)", citation="Sutton 1996; RL Baselines3 Zoo (Raffin 2020)",
        data_sources=("gymnasium Acrobot-v1",),
    )
    env_id: ClassVar[str] = "Acrobot-v1"
    observation_names: ClassVar[tuple[str, ...]] = ("cos theta1", "sin theta1", "cos theta2", "sin theta2",
                                                    "theta1 velocity", "theta2 velocity")
    action_names: ClassVar[tuple[str, ...]] = ("torque -1", "torque 0", "torque +1")
    protocols: ClassVar[dict[str, ControlProtocol]] = protocol_table(
        smoke=ControlProtocol(algo="dqn", total_timesteps=1000, hyperparams=ZOO_DQN, backbone=MLP, threads=1,
                              eval_episodes=3),
        quick=ControlProtocol(algo="dqn", total_timesteps=100_000, hyperparams=ZOO_DQN, backbone=MLP, threads=1),
        standard=ControlProtocol(algo="dqn", total_timesteps=100_000, hyperparams=ZOO_DQN, backbone=MLP, threads=1,
                                 eval_episodes=100),
    )
