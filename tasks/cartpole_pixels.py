"""`cartpole-pixels`: CartPole-v1 seen only through rendered frames, with a pretrained vision encoder.

Observations are the environment's rgb_array renders resized to `image_size` (64 px on CPU) and stacked
over `frames` steps (2: velocity is not visible in one frame). The policy's encoder is any registered
vision backbone (EfficientNet-Lite0 ImageNet weights by default), frozen (`--adapt frozen`, default) or
fine-tuned (`full`, `partial:N`); each frame is encoded and the pooled features of the stack feed
PPO's heads. This measures how useful a pretrained visual representation is for control.
PPO hyperparameters follow the RL-Zoo CartPole-v1 recipe (see `cartpole`) with fewer epochs per
update (4), since a trained encoder re-encodes frames in every update (a frozen one encodes each frame
once: harness/training/frame_memo.py). `standard` (5e5 steps) is sized for a GPU; `smoke` and `quick` run
on a CPU.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from harness.control_tasks import ControlProtocol, ControlTask
from harness.protocol import protocol_table
from harness.task import TaskSpec, register_task

PPO = {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 4, "ent_coef": 0.0,
       "learning_rate": ["linear", 0.001], "clip_range": ["linear", 0.2]}


def rendered_frames(env: Any, size: int) -> Any:
    """An observation wrapper: the rendered frame, resized with PIL, as uint8 [size, size, 3]."""
    import gymnasium as gym
    from PIL import Image

    class RenderedFrames(gym.ObservationWrapper):
        def __init__(self, inner: Any):
            super().__init__(inner)
            self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

        def observation(self, observation: Any) -> np.ndarray:
            frame = Image.fromarray(self.env.render())
            return np.asarray(frame.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)

    return RenderedFrames(env)


@register_task
class CartPolePixelsTask(ControlTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="cartpole-pixels",
        default_backbone="efficientnet-lite0", backbone_modality="image", default_adapt="frozen", version="1",
        description="CartPole-v1 from rendered frames (2-frame stacks), PPO on a pretrained vision encoder",
        license="MIT (gymnasium)", citation="Barto, Sutton and Anderson 1983; RL Baselines3 Zoo (Raffin 2020)",
        data_sources=("gymnasium CartPole-v1 rgb_array renders",),
    )
    env_id: ClassVar[str] = "CartPole-v1"
    action_names: ClassVar[tuple[str, ...]] = ("push left", "push right")
    protocols: ClassVar[dict[str, ControlProtocol]] = protocol_table(
        smoke=ControlProtocol(algo="ppo", total_timesteps=256, n_envs=4,
                              hyperparams=PPO | {"n_steps": 32, "batch_size": 64, "n_epochs": 1},
                              backbone={"image_size": 64, "frames": 2, "features_dim": 128}, eval_episodes=2),
        quick=ControlProtocol(algo="ppo", total_timesteps=20_000, n_envs=8, hyperparams=PPO,
                              backbone={"image_size": 64, "frames": 2, "features_dim": 256}),
        standard=ControlProtocol(algo="ppo", total_timesteps=500_000, n_envs=8, hyperparams=PPO,
                                 backbone={"image_size": 96, "frames": 2, "features_dim": 256}, eval_episodes=50),
    )

    def observation_kind(self) -> str:
        return "pixels"

    def make_env(self, protocol: ControlProtocol | None = None, render: bool = False) -> Any:
        from gymnasium.wrappers import FrameStackObservation

        settings = (protocol or self.protocols["quick"]).backbone
        env = super().make_env(protocol, render=True)
        return FrameStackObservation(rendered_frames(env, int(settings["image_size"])), int(settings["frames"]))
