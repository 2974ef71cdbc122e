"""Which test examples (or states) a run's explanation covers: a fixed sample seeded by the run's seed.

The sample depends on the run's seed only, never on the global RNG, so explaining a run twice explains the
same items. Which test examples may be drawn at all is the explainer's call (`Explainer.candidates`); a
control run's states are those its trained agent meets in explanation episodes, seeded apart from training
and from the run's own evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from harness.explain.base import Explainer
from harness.task import Example

SAMPLE_SALT = 0xE4  # the explained sample depends on the run's seed only, never on the global RNG
EXPLAIN_SEED_OFFSET = 2_000_003  # explanation episodes share no seed with training or evaluation
MAX_EPISODES = 10


def sample_generator(seed: int) -> np.random.Generator:
    """The generator a run's sample is drawn with (test examples, or states met by the agent)."""
    return np.random.default_rng([seed, SAMPLE_SALT])


def sample_examples(task: Any, protocol: Any, explainer: Explainer,
                    stored_predictions: Callable[[], Iterable[dict[str, Any]]], count: int,
                    seed: int) -> list[Example]:
    """Up to `count` test examples, drawn without replacement among the explainer's candidates and kept in
    test-split order."""
    rows = task.load_split("test", protocol.test_limit)
    rng = sample_generator(seed)
    rows = explainer.candidates(rows, stored_predictions)
    chosen = np.sort(rng.choice(len(rows), size=min(count, len(rows)), replace=False))
    return [rows[i] for i in chosen]


def sample_states(task: Any, protocol: Any, agent: torch.nn.Module, normalise: Callable[[np.ndarray], np.ndarray],
                  count: int, seed: int) -> list[np.ndarray]:
    """Up to `count` states the trained agent meets in seeded explanation episodes."""
    return collect_states(task, protocol, agent, normalise, count, seed, sample_generator(seed))


def collect_states(task: Any, protocol: Any, agent: torch.nn.Module, normalise: Callable[[np.ndarray], np.ndarray],
                   count: int, seed: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to `count` states met by the deterministic policy (`agent`: observations -> action probabilities),
    spread evenly over up to 10 seeded episodes."""
    env = task.make_env(protocol)
    device = next(agent.parameters()).device
    episodes: list[list[np.ndarray]] = []
    try:
        for episode in range(MAX_EPISODES):
            obs, _ = env.reset(seed=EXPLAIN_SEED_OFFSET + 1000 * seed + episode)
            states, done = [], False
            while not done:
                model_obs = normalise(np.asarray(obs)[None])
                states.append(model_obs[0])
                with torch.no_grad():
                    action = int(agent(torch.as_tensor(model_obs, device=device)).argmax(-1)[0])
                obs, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
            episodes.append(states)
            if sum(len(e) for e in episodes) >= 4 * count and len(episodes) >= 2:
                break
    finally:
        env.close()
    pool = [s for e in episodes for s in e]
    chosen = np.sort(rng.choice(len(pool), size=min(count, len(pool)), replace=False))
    return [pool[i] for i in chosen]
