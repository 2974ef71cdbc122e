"""One run over several devices (DDP through accelerate), on CPU: `harness run --devices 2` starts two gloo
processes. Each run is compared with the same run on one process: same run id, one complete record, every
test example predicted exactly once and in the split's order, metrics within a stated tolerance.

The tolerance. With every dropout off, two processes reproduce one process to float rounding
(`test_two_processes_without_noise_reproduce_one`): each step sees the same examples (the protocol's batch
size is the global batch), the gradients are the same average, and evaluation scores each example once.
What remains in a real run is how the noise is drawn: each process draws dropout masks for its half of a
batch, and batch norm normalises over a device's 8 images instead of 16. That is a change of random draws,
like a change of seed: over seeds 0-3 these smoke runs spread 0.125 in sentiment accuracy and 0.03 in
Fashion-MNIST top-1. We allow 0.1 on the primary metric (about 6 of 64 test examples); measured here
(2026-12-01) the two runs differed by 0.016 (sentiment), 0.031 (Fashion-MNIST) and 0.016 (sentiment with a
frozen backbone, cached features).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_env, run_cli

TOLERANCE = 0.1  # on the primary metric; see the module docstring


def _one_line_error(out) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--task", "sentiment", "--devices", "0"], "invalid --devices '0': expected a positive integer"),
    (["--task", "sentiment", "--devices", "-2"], "invalid --devices '-2': expected a positive integer"),
    (["--task", "sentiment", "--devices", "two"], "invalid --devices 'two'"),
    (["--task", "cartpole", "--devices", "2"], "'cartpole' is a control (RL) task, and RL training runs on one"),
    (["--task", "sentiment", "--protocol", "smoke", "--devices", "3"],
     "batch size 16 is the global batch and cannot be split evenly over 3 devices"),
    (["--leaderboard", "cpu-default", "--devices", "2"], "it does not apply to --leaderboard"),
])
def test_devices_usage_errors_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in _one_line_error(run_cli("run", *args, runs_dir=tmp_path / "runs"))


def test_more_devices_than_gpus_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from harness.errors import UsageError
    from harness.planning import plan_runs
    from harness.training.distributed import check_devices

    plans = plan_runs("sentiment", protocol="smoke")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UsageError, match="--devices 2 asks for 2 GPUs, but torch sees 1"):
        check_devices(plans, 2, "cuda")
    assert check_devices(plans, 2, "cpu") == 2 and check_devices(plans, 1, "cuda") == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun: the launcher's world size rules
    assert check_devices(plans, 1, "cpu") == 2
    with pytest.raises(UsageError, match="disagrees with the launcher, which started 2 processes"):
        check_devices(plans, 4, "cpu")


def _run(runs: Path, *args: str, **env: str) -> tuple[dict, list[dict], float]:
    started = time.perf_counter()
    out = run_cli("run", *args, "--protocol", "smoke", "--json", "--quiet", runs_dir=runs, **env)
    seconds = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    complete = [p for p in runs.iterdir() if (p / "result.json").is_file()]
    assert [p.name for p in complete] == [record["run_id"]]  # exactly one record, the complete run
    assert json.loads((complete[0] / "result.json").read_text()) == record and record["status"] == "complete"
    lines = (complete[0] / "predictions.jsonl").read_text().splitlines()
    return record, [json.loads(line) for line in lines], seconds


# Image runs go through the same sharded loader, batch sampler and prediction gathering as text runs (a
# fashion-mnist case here cost a minute of CI for no code path of its own)
@pytest.mark.parametrize("args", [("--task", "sentiment"), ("--task", "sentiment", "--adapt", "frozen")],
                         ids=["sentiment", "sentiment-frozen-cached-features"])
def test_two_processes_match_one(tmp_path: Path, args: tuple[str, ...]) -> None:
    cache = str(tmp_path / "cache")  # a fresh feature cache: two processes compute the features, one reuses them
    two, two_preds, two_s = _run(tmp_path / "two", *args, "--devices", "2", HARNESS_CACHE_DIR=cache)
    one, one_preds, one_s = _run(tmp_path / "one", *args, HARNESS_CACHE_DIR=cache)
    print(f"\n{' '.join(args)}: 1 process {one['primary_metric']} {one['primary']:.4f} in {one_s:.1f}s, "
          f"2 processes {two['primary']:.4f} in {two_s:.1f}s")

    assert two["run_id"] == one["run_id"] and two["config_hash"] == one["config_hash"]
    assert (one["env"]["world_size"], two["env"]["world_size"]) == (1, 2)
    ids = [p["id"] for p in two_preds]
    assert len(ids) == len(set(ids)) == two["n_examples"] == one["n_examples"] == 64
    assert ids == [p["id"] for p in one_preds]  # every test example once, in the split's order
    assert [p["ref"] for p in two_preds] == [p["ref"] for p in one_preds]
    assert abs(two["primary"] - one["primary"]) <= TOLERANCE, (one["metrics"], two["metrics"])
    assert (two["n_train"], two["best_epoch"]) == (one["n_train"], one["best_epoch"])
    if "frozen" in args:
        assert (two["execution"]["feature_cache"], one["execution"]["feature_cache"]) == ("miss", "hit")


def test_torchrun_makes_the_run_the_harness_launch_makes(tmp_path: Path, tiny_text_backbone: Path) -> None:
    args = ("--task", "sentiment", "--backbone", str(tiny_text_backbone), "--protocol", "smoke")
    own, own_preds, _ = _run(tmp_path / "own", *args[:-2], "--devices", "2", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "harness", "run", *args, "--json", "--quiet"], capture_output=True, text=True,
                         timeout=600, env=cli_env(tmp_path / "torchrun", OMP_NUM_THREADS="1"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)  # rank 0 alone prints
    (stored,) = [p for p in (tmp_path / "torchrun").iterdir() if (p / "result.json").is_file()]
    assert json.loads((stored / "result.json").read_text()) == record
    assert record["run_id"] == own["run_id"] and record["env"]["world_size"] == 2
    assert record["metrics"] == own["metrics"]  # the same processes, seeds and threads: the same numbers
    assert [json.loads(line) for line in (stored / "predictions.jsonl").read_text().splitlines()] == own_preds

    again = run_cli("run", *args, "--devices", "2", "--json", runs_dir=tmp_path / "own")
    assert again.returncode == 0 and json.loads(again.stdout) == own
    assert "already complete" in again.stderr and "starting 2 processes" not in again.stderr


def test_gpu_check_without_cuda_says_so_and_succeeds(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env=cli_env(tmp_path, CUDA_VISIBLE_DEVICES=""))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "no CUDA device: nothing to check\n"


def _noise_free_run(**arguments) -> None:
    """`api.run` with every dropout layer off (what each started process calls)."""
    import torch

    from harness import api

    torch.nn.Dropout.forward = lambda self, x: x
    api.run(**arguments)


def test_two_processes_without_noise_reproduce_one(tmp_path: Path, tiny_text_backbone: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.training.distributed import launch

    folder = tmp_path / "tiny-bert-no-dropout"
    folder.mkdir()
    for item in tiny_text_backbone.iterdir():
        (folder / item.name).symlink_to(item)
    config = json.loads((tiny_text_backbone / "config.json").read_text())
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(json.dumps(config | {"hidden_dropout_prob": 0.0,
                                                            "attention_probs_dropout_prob": 0.0}))
    for name, value in cli_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    records = {}
    for processes in (1, 2):  # launch(..., 1): a launcher's world of one is a plain one-process run
        runs = tmp_path / f"runs{processes}"
        launch(_noise_free_run, {"task": "sentiment", "backbone": str(folder), "protocol": "smoke", "device": "cpu",
                                 "runs_dir": str(runs), "progress": False, "devices": processes}, processes)
        (run_dir,) = [p for p in runs.iterdir() if (p / "result.json").is_file()]
        records[processes] = (json.loads((run_dir / "result.json").read_text()),
                              [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()])
    (one, one_preds), (two, two_preds) = records[1], records[2]
    assert one["run_id"] == two["run_id"]
    assert [p["id"] for p in one_preds] == [p["id"] for p in two_preds]
    probs = [(a, b) for p, q in zip(one_preds, two_preds, strict=True)
             for a, b in zip(p["pred"]["probs"], q["pred"]["probs"], strict=True)]
    assert max(abs(a - b) for a, b in probs) <= 1e-5  # float summation order only (probs are rounded to 1e-6)
    assert one["metrics"] == pytest.approx(two["metrics"], abs=1e-5)
    assert one["dev_history"][0]["train_loss"] == pytest.approx(two["dev_history"][0]["train_loss"], abs=1e-5)
