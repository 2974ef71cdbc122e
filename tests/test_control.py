"""Reinforcement-learning tasks: SB3 algorithms on harness backbones, seeded evaluation, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from harness import api


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def _json(out) -> dict | list:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cartpole_smoke_record_and_exact_reproduction(runs: Path) -> None:
    args = ("run", "--task", "cartpole", "--protocol", "smoke", "--json", "--quiet")
    scratch = runs.parent / "tmp"
    scratch.mkdir()
    first = _json(run_cli(*args, runs_dir=runs, TMPDIR=str(scratch)))
    assert not list(scratch.glob("SB3-*"))  # SB3's default logger would leave a folder per run in the temp dir
    assert first["primary_metric"] == "iqm_return" and first["backbone"] == "mlp"
    assert {"iqm_return", "mean_return", "iqm_return_low", "iqm_return_high"} <= set(first["metrics"])
    assert first["metrics"]["iqm_return_low"] <= first["metrics"]["iqm_return"] <= first["metrics"]["iqm_return_high"]
    assert first["n_examples"] == 5 and first["config"]["protocol"]["algo"] == "ppo"
    run_dir = runs / first["run_id"]
    episodes = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(episodes) == 5 and all(e["pred"]["return"] >= 1 for e in episodes)
    again = _json(run_cli(*args, "--force", runs_dir=runs))
    assert again["metrics"] == first["metrics"]  # the same seed reproduces its returns exactly on CPU
    assert [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()] == episodes


def test_cartpole_three_seeds_prints_iqm_with_interval(runs: Path) -> None:
    out = run_cli("run", "--task", "cartpole", "--protocol", "smoke", "--seeds", "0,1,2", "--quiet", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    assert "over 3 seeds: IQM of iqm_return" in out.stdout
    assert "95% CI" in out.stdout
    assert len([p for p in runs.iterdir() if (p / "result.json").is_file()]) == 3


@pytest.mark.parametrize("task", ["acrobot", "mountaincar"])
def test_dqn_tasks_smoke(task: str, runs: Path) -> None:
    (outcome,) = api.run(task, protocol="smoke", runs_dir=runs, progress=False)
    record = outcome.record
    assert record["status"] == "complete" and record["config"]["protocol"]["algo"] == "dqn"
    assert record["n_examples"] == 3 and record["metrics"]["mean_return"] <= 0  # both tasks pay -1 per step


def test_pixel_cartpole_with_frozen_packaged_vision_encoder(runs: Path) -> None:
    from safetensors.torch import load_file

    from harness.backbones.spec import BACKBONES

    (outcome,) = api.run("cartpole-pixels", protocol="smoke", runs_dir=runs, progress=False)
    record = outcome.record
    assert record["backbone"] == "efficientnet-lite0" and record["adapt"] == "frozen"
    assert record["backbone_source"].startswith("package")
    weights = load_file(runs / record["run_id"] / "weights.safetensors")
    pretrained = BACKBONES.get("efficientnet-lite0").build().state_dict()
    prefix = "policy.features_extractor.backbone."
    encoder = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    assert encoder, "the encoder's weights are part of the stored policy"
    for name, tensor in pretrained.items():  # frozen: weights and batch-norm statistics untouched
        assert torch.equal(encoder[name], tensor), name


def test_bad_control_input(runs: Path) -> None:
    out = run_cli("run", "--task", "cartpole", "--backbone", "minilm", runs_dir=runs)
    assert out.returncode == 2 and "is a text backbone; this task needs a control one" in out.stderr
    out = run_cli("run", "--task", "cartpole-pixels", "--backbone", "mlp", runs_dir=runs)
    assert out.returncode == 2 and "needs an image one" in out.stderr
    out = run_cli("run", "--task", "cartpole", "--data-dir", "/tmp", runs_dir=runs)
    assert out.returncode == 2 and "takes no --data-dir" in out.stderr
