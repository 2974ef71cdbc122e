"""Reinforcement learning through stable-baselines3, with a harness backbone as the feature extractor.

The algorithms are SB3's (PPO, DQN), not ours. The harness adds: the backbone as the policy's feature
extractor (an MLP for vector observations, any registered vision backbone for rendered frames, frozen
or trained), seeding, and evaluation on separately seeded environments with a fixed number of episodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.control_tasks import ControlProtocol
from harness.progress import ProgressReporter
from harness.training.devices import torch_threads
from harness.training.frame_memo import FrameFeatureMemo
from harness.training.memory import peak_memory_mb
from harness.training.supervised import EvalResult, TrainResult

log = logging.getLogger("harness")
EVAL_SEED_OFFSET = 1_000_003  # evaluation environments never share a seed with training ones


def _extractor_base() -> type:
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    return BaseFeaturesExtractor


class BackboneExtractor(_extractor_base()):  # type: ignore[misc]
    """SB3 features extractor around a harness backbone. Vector observations go straight in; stacked
    uint8 frames [batch, stack, H, W, 3] are normalised with the backbone's own mean/std, encoded frame
    by frame (channels-last: 1.5x faster CNN training steps on this CPU, see devices.py), and the pooled
    features of the stack are concatenated and projected. A frozen encoder sees each frame once
    (frame_memo.py)."""

    def __init__(self, observation_space: Any, make_backbone: Callable[[], nn.Module], frozen: bool,
                 pixels: bool, pretrained: bool, features_dim: int | None = None):
        backbone = make_backbone()
        frames = observation_space.shape[0] if pixels else 1
        out_dim = features_dim if pixels else backbone.feature_dim
        super().__init__(observation_space, out_dim)
        self.backbone = backbone
        self.frozen = frozen
        self.pixels = pixels
        # SB3's PPO re-initialises every Linear/Conv of the policy orthogonally (ortho_init); pretrained
        # weights are put back afterwards by finish_setup().
        self._pretrained = {k: v.clone() for k, v in backbone.state_dict().items()} if pretrained else None
        if frozen:
            backbone.requires_grad_(False)
        if pixels:
            config = backbone.data_config
            self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1) * 255.0)
            self.project = nn.Sequential(nn.Linear(frames * backbone.feature_dim, out_dim), nn.ReLU())
        self.memo = FrameFeatureMemo() if pixels and frozen else None
        if self.memo is not None:  # features of the weights before are not the encoder's after a load
            backbone.register_load_state_dict_post_hook(lambda module, keys, memo=self.memo: memo.clear())

    def finish_setup(self) -> None:
        """After SB3 has built (and re-initialised) the policy: the pretrained weights back, and an image
        encoder in channels-last memory (not before: SB3's orthogonal init cannot view such weights)."""
        if self._pretrained is not None:
            self.backbone.load_state_dict(self._pretrained)
            self._pretrained = None
        if self.pixels:
            self.backbone.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> BackboneExtractor:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # frozen means frozen: no dropout, no batch-norm statistics updates
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if not self.pixels:
            return self.backbone(observations=observations).pooled
        batch, frames = observations.shape[:2]
        flat = observations.flatten(0, 1)  # [batch*frames, H, W, 3]
        pooled = self.memo.features(flat, self._encode) if self.memo is not None else self._encode(flat)
        return self.project(pooled.reshape(batch, frames * pooled.shape[-1]))

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, H, W, 3] frames (0-255) -> [N, feature_dim] pooled features."""
        images = frames.float().permute(0, 3, 1, 2)  # NHWC in memory already: channels-last for free
        images = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.backbone(pixel_values=images).pooled


def _schedules(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """RL-Zoo's `lin_x` (written ["linear", x] in a protocol): decays linearly from x to 0."""
    out = {}
    for key, value in hyperparams.items():
        if isinstance(value, list | tuple) and len(value) == 2 and value[0] == "linear":
            start = float(value[1])
            out[key] = lambda progress_remaining, start=start: progress_remaining * start
        else:
            out[key] = value
    return out


def build_agent(task: Any, make_backbone: Callable[[], nn.Module], protocol: ControlProtocol, seed: int, device: str,
                frozen: bool, pretrained: bool) -> tuple[Any, Any]:
    """The SB3 algorithm with the harness backbone as its features extractor, and its vector environment."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecNormalize

    pixels = task.observation_kind() == "pixels"
    env = make_vec_env(lambda: task.make_env(protocol), n_envs=protocol.n_envs, seed=seed)
    if protocol.normalize_obs:
        env = VecNormalize(env, norm_obs=True, norm_reward=False)
    policy_kwargs = {
        "features_extractor_class": BackboneExtractor,
        "features_extractor_kwargs": {"make_backbone": make_backbone, "frozen": frozen, "pixels": pixels,
                                      "pretrained": pretrained,
                                      "features_dim": int(protocol.backbone.get("features_dim", 256))},
        "net_arch": list(protocol.backbone.get("head", [])),
    }
    algo_cls = PPO if protocol.algo == "ppo" else DQN
    model = algo_cls("MlpPolicy", env, seed=seed, device=device, policy_kwargs=policy_kwargs, verbose=0,
                     **_schedules(protocol.hyperparams))
    # a logger that writes nowhere: SB3's default makes a new empty /tmp/SB3-<time> folder on every learn()
    model.set_logger(Logger(folder=None, output_formats=[]))
    for module in model.policy.modules():
        if isinstance(module, BackboneExtractor):
            module.finish_setup()
    if hasattr(model, "q_net_target"):  # DQN: the target starts as an exact copy of the online network
        model.q_net_target.load_state_dict(model.q_net.state_dict())
    return model, env


def train_and_evaluate_control(task: Any, make_backbone: Callable[[], nn.Module], protocol: ControlProtocol,
                               seed: int, device: str, frozen: bool, pretrained: bool,
                               progress: ProgressReporter) -> TrainResult:
    with torch_threads(protocol.threads) as threads:
        model, env = build_agent(task, make_backbone, protocol, seed, device, frozen, pretrained)
        started = time.perf_counter()
        with progress.phase(f"{protocol.algo} {protocol.total_timesteps} steps", protocol.total_timesteps) as update:
            model.learn(total_timesteps=protocol.total_timesteps, callback=_ProgressCallback(update))
        train_seconds = time.perf_counter() - started
        test = evaluate_policy(task, model, protocol, env if protocol.normalize_obs else None, seed)
    timing = {
        "train_s": round(train_seconds, 3),
        "eval_s": round(test.seconds, 3),
        "train_examples_per_s": round(protocol.total_timesteps / max(train_seconds, 1e-9), 2),  # env steps/s
        "eval_examples_per_s": round(len(test.ids) / max(test.seconds, 1e-9), 2),  # episodes/s
        "peak_mem_mb": peak_memory_mb(device),
    }
    state = {f"policy.{k}": v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}
    if protocol.normalize_obs:  # the observation statistics are part of the trained agent
        state["obs_rms.mean"] = torch.as_tensor(env.obs_rms.mean, dtype=torch.float64)
        state["obs_rms.var"] = torch.as_tensor(env.obs_rms.var, dtype=torch.float64)
    env.close()
    return TrainResult(test=test, best_epoch=0, timing=timing, execution={"threads": threads},
                       trainable_state=state, n_train=protocol.total_timesteps, n_dev=0)


def evaluate_policy(task: Any, model: Any, protocol: ControlProtocol, normalizer: Any, seed: int) -> EvalResult:
    """Deterministic policy on fresh environments seeded apart from training: one row per episode."""
    from harness.stats import bootstrap_ci, iqm

    started = time.perf_counter()
    returns, lengths = [], []
    episodes = protocol.eval_episodes
    env = task.make_env(protocol)
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=EVAL_SEED_OFFSET + 1000 * seed + episode)
            total, steps, done = 0.0, 0, False
            while not done:
                model_obs = normalizer.normalize_obs(obs[None]) if normalizer is not None else obs[None]
                action, _ = model.predict(model_obs, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action[0])
                total += float(reward)
                steps += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(steps)
    finally:
        env.close()
    values = np.asarray(returns)
    interval = bootstrap_ci(values, statistic="iqm", seed=seed)
    metrics = {"iqm_return": float(iqm(values)), "mean_return": float(values.mean()),
               "iqm_return_low": float(interval.low), "iqm_return_high": float(interval.high),
               "std_return": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
               "mean_length": float(np.mean(lengths))}
    ids = [f"episode-{i:03d}" for i in range(episodes)]
    preds = [{"return": r, "length": n, "env_seed": EVAL_SEED_OFFSET + 1000 * seed + i}
             for i, (r, n) in enumerate(zip(returns, lengths, strict=True))]
    return EvalResult(metrics, ids, preds, [None] * episodes, 0.0, time.perf_counter() - started)


class _ProgressCallback:
    """Adapts SB3's callback protocol to the harness progress reporter."""

    def __new__(cls, update: Callable[..., None]) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        class Callback(BaseCallback):
            def _on_step(self) -> bool:
                if self.n_calls % 64 == 0:
                    update(advance=64 * self.training_env.num_envs)
                return True

        return Callback()
