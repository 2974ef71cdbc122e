"""Experiment trackers through the real CLI, read back with each tracker's own reader: TensorBoard event files,
MLflow's local file store through `mlflow.search_runs`, W&B in offline mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from harness.errors import UsageError
from harness.tracking import flat_config, parse_trackers

pytest.importorskip("tensorboard")
mlflow = pytest.importorskip("mlflow")
pytest.importorskip("wandb")


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return found


def test_a_run_logs_to_tensorboard_mlflow_and_wandb(tmp_path: Path, tiny_text_backbone: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    runs, tracking = tmp_path / "runs", tmp_path / "tracking"
    store = tmp_path / "mlruns"  # MLflow's local file store (in maintenance mode since MLflow 3: opted in)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = run_cli("run", "--task", "sentiment", "--backbone", str(tiny_text_backbone), "--protocol", "smoke",
                  "--log-with", "tensorboard,mlflow,wandb", "--tracking-dir", str(tracking), "--json", "--quiet",
                  runs_dir=runs, MLFLOW_TRACKING_URI=store.as_uri(), MLFLOW_ALLOW_FILE_STORE="true",
                  WANDB_MODE="offline", WANDB_SILENT="true")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    run_id = record["run_id"]

    logged = scalars(tracking / run_id)
    assert logged["train/loss"] and all(step >= 1 for step, _ in logged["train/loss"])
    assert [step for step, _ in logged["dev/accuracy"]] == [len(logged["train/loss"])]  # after the one epoch
    assert logged["test/accuracy"][0][1] == pytest.approx(record["metrics"]["accuracy"])
    assert "timing/train_s" in logged

    mlflow.set_tracking_uri(store.as_uri())
    found = mlflow.search_runs(experiment_names=["harness"], output_format="list")
    assert len(found) == 1
    run = found[0]
    assert run.data.tags["mlflow.runName"] == run_id and run.data.tags["task"] == "sentiment"
    assert run.data.params["config_hash"] == record["config_hash"] and run.data.params["protocol.name"] == "smoke"
    assert run.data.metrics["test/accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    assert "dev/accuracy" in run.data.metrics

    offline = list((tracking / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    logged_run = next(offline[0].glob("*.wandb")).read_bytes()  # wandb's own record log: the run is named
    assert run_id.encode() in logged_run and b"test/accuracy" in logged_run
    assert "tracker" not in out.stderr  # no tracker warned that it failed


def test_unknown_or_missing_tracker_is_one_line(tmp_path: Path) -> None:
    out = run_cli("run", "--task", "sentiment", "--protocol", "smoke", "--log-with", "comet", runs_dir=tmp_path / "r")
    assert out.returncode == 2 and "unknown tracker 'comet'" in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()
    with pytest.raises(UsageError, match="twice"):
        parse_trackers("tensorboard,tensorboard")


def test_flat_config() -> None:
    flat = flat_config({"protocol": {"lr": 1e-4, "inputs": {"max_length": 64}}, "seed": 0, "limit": None})
    assert flat == {"protocol.lr": 1e-4, "protocol.inputs.max_length": 64, "seed": 0, "limit": "none"}
