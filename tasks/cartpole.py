"""`cartpole`: CartPole-v1 (gymnasium classic control), PPO with the RL-Zoo hyperparameters.

Protocol `quick` = `standard` = rl-baselines3-zoo `hyperparams/ppo.yml`, CartPole-v1 ("Tuned"): 8 envs,
1e5 steps, n_steps 32, batch 256, gae_lambda 0.8, gamma 0.98, 20 epochs, ent_coef 0, lr lin_0.001,
clip lin_0.2. The zoo's policy has separate 64-64 tanh trunks for actor and critic; here one shared
64-64 tanh MLP backbone (the harness's feature extractor) feeds both heads. Solved at return >= 475.
Evaluation: 20 episodes (quick/standard) on environments seeded apart from training; primary metric
the IQM of the episode returns.
"""

from __future__ import annotations

from typing import ClassVar

from harness.control_tasks import ControlProtocol, ControlTask
from harness.protocol import protocol_table
from harness.task import TaskSpec, register_task

ZOO_PPO = {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
           "learning_rate": ["linear", 0.001], "clip_range": ["linear", 0.2]}
MLP = {"hidden": [64, 64], "activation": "tanh"}


@register_task
class CartPoleTask(ControlTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="cartpole", default_backbone="mlp",
        version="1", description="CartPole-v1 balance, PPO (RL-Zoo hyperparameters), IQM over 20 evaluation episodes",
        license="MIT (gymnasium)", citation="Barto, Sutton and Anderson 1983; RL Baselines3 Zoo (Raffin 2020)",
        data_sources=("gymnasium CartPole-v1",),
    )
    env_id: ClassVar[str] = "CartPole-v1"
    observation_names: ClassVar[tuple[str, ...]] = ("cart position", "cart velocity", "pole angle",
                                                    "pole angular velocity")
    action_names: ClassVar[tuple[str, ...]] = ("push left", "push right")
    protocols: ClassVar[dict[str, ControlProtocol]] = protocol_table(
        smoke=ControlProtocol(algo="ppo", total_timesteps=2048, n_envs=8, hyperparams=ZOO_PPO | {"n_epochs": 2},
                              backbone=MLP, threads=1, eval_episodes=5),
        quick=ControlProtocol(algo="ppo", total_timesteps=100_000, n_envs=8, hyperparams=ZOO_PPO, backbone=MLP,
                              threads=1),
        standard=ControlProtocol(algo="ppo", total_timesteps=100_000, n_envs=8, hyperparams=ZOO_PPO,
                                 backbone=MLP, threads=1, eval_episodes=100),
    )
