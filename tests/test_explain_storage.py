"""How explanations are stored: atomically beside the run, never touching what the run measured, and
the weights that let a trained model be rebuilt exactly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import api
from harness.adaptation import Adaptation
from harness.backbones.featurizer import LastLayer
from harness.backbones.heads import SequenceClassificationHead
from harness.backbones.spec import Features
from harness.errors import NothingToExplain
from harness.store import RunStore
from harness.training.model import TaskModel


def test_replace_folder_swaps_whole_folders(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    (tmp_path / "r1").mkdir()
    for version in ("one", "two"):
        staged = tmp_path / "r1" / ".explanations.tmp"
        staged.mkdir()
        (staged / "explanation.json").write_text(version)
        store.replace_folder("r1", "explanations", staged)
        assert (tmp_path / "r1" / "explanations" / "explanation.json").read_text() == version
        assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == ["explanations"]


class _BatchNormBackbone(nn.Module):
    feature_dim, num_layers, num_hidden_states = 3, 1, 1

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(3)

    def forward(self, pixel_values: torch.Tensor, **_: object) -> Features:
        sequence = self.norm(pixel_values).flatten(2).transpose(1, 2)
        mask = torch.ones(sequence.shape[:2], dtype=torch.long)
        return Features(sequence=sequence, hidden_states=(sequence,), mask=mask, pooled=sequence.mean(1))

    def layer_groups(self) -> list[nn.Module]:
        return [self.norm]


@pytest.mark.parametrize("adapt", ["full", "partial:1", "frozen"])
def test_trained_state_keeps_batch_norm_statistics_unless_frozen(adapt: str) -> None:
    model = TaskModel(_BatchNormBackbone(), LastLayer(), SequenceClassificationHead(3, 2), Adaptation.parse(adapt))
    model.train()
    model({"pixel_values": torch.randn(4, 3, 2, 2) * 5 + 3})  # training mode moves the running statistics
    state = model.trainable_state()
    assert ("backbone.norm.running_mean" in state) == (adapt != "frozen")
    if adapt != "frozen":
        assert torch.equal(state["backbone.norm.running_mean"], model.backbone.norm.running_mean)
    assert "head.classifier.weight" in state


def test_interrupted_explanation_leaves_the_run_intact_and_reruns_cleanly(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.explain import runner

    (outcome,) = api.run("cartpole", protocol="smoke", runs_dir=tmp_path, progress=False)
    run_dir = tmp_path / outcome.record["run_id"]
    before = (run_dir / "result.json").read_bytes()
    real = runner._explain

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_explain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.explain(outcome.record["run_id"], runs_dir=tmp_path)
    assert (run_dir / "result.json").read_bytes() == before
    assert not (run_dir / "explanations").exists()
    assert not (run_dir / ".explanations.tmp").exists()  # the staging folder is cleared on the way out

    monkeypatch.setattr(runner, "_explain", real)
    random.seed(11)
    np.random.seed(12)
    state = (torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    block = api.explain(outcome.record["run_id"], runs_dir=tmp_path, device="cpu")
    # the global RNGs are as they were, though rebuilding the agent ran SB3's set_random_seed
    assert torch.equal(torch.random.get_rng_state(), state[0]) and random.getstate() == state[1]
    assert np.array_equal(np.random.get_state()[1], state[2])
    record = json.loads((run_dir / "result.json").read_text())
    assert record["explanation"] == block and record["metrics"] == outcome.record["metrics"]
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []


def test_run_with_explain_keeps_the_run_when_there_is_nothing_to_explain(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.explain import runner

    def nothing(*args: object, **kwargs: object) -> None:
        raise NothingToExplain("nothing to explain: the model predicts no entity")

    monkeypatch.setattr(runner, "explain_run", nothing)  # where `run --explain` looks it up
    (outcome,) = api.run("cartpole", protocol="smoke", runs_dir=tmp_path, progress=False, explain=True)
    assert outcome.record["status"] == "complete" and "explanation" not in outcome.record
