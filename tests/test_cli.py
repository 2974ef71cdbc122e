"""End to end through the real CLI in a subprocess, on the packaged assets (smoke protocol)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HARNESS, cli_env, run_cli

SCHEMA_FIELDS = {"schema_version", "run_id", "status", "task", "task_version", "backbone", "adapt", "protocol",
                 "seed", "config", "config_hash", "metrics", "primary_metric", "primary", "n_examples", "timing",
                 "env", "created_at"}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def _one_line_error(out: subprocess.CompletedProcess, code: int = 2) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert lines[0].startswith("harness: error: ")
    return lines[0]


def test_help_and_list_are_fast_and_torch_free(runs: Path) -> None:
    assert run_cli("--help", runs_dir=runs).returncode == 0
    out = run_cli("list", "--json", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert {"ner", "sentiment"} <= {t["name"] for t in listing["tasks"]}
    assert "minilm" in {b["name"] for b in listing["backbones"]}
    code = ("import sys; from harness.cli import main; main(['list']); "
            "assert not {'torch', 'pandas', 'scipy'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=cli_env(runs))
    protocols = json.loads(run_cli("list", "protocols", "--json", runs_dir=runs).stdout)
    assert {(p["task"], p["name"]) for p in protocols} >= {("ner", "smoke"), ("ner", "quick"), ("ner", "standard")}


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "--task", "nerr"], "unknown task 'nerr'; did you mean 'ner'?"),
    (["run", "--task", "ner", "--seed", "abc"], "invalid seed 'abc'"),
    (["run", "--task", "ner", "--seeds", "0,x"], "invalid seed 'x'"),
    (["run", "--task", "ner", "--protocol", "nope"], "unknown protocol 'nope' for task 'ner'"),
    (["run", "--task", "ner", "--backbone", "/no/such/dir"], "neither a registered backbone nor an existing"),
    (["run", "--task", "ner", "--backbone", "minilmm"], "did you mean 'minilm'"),
    (["run", "--task", "ner", "--adapt", "partial:99"], "more layers than backbone 'minilm' has (6)"),
    (["run", "--task", "ner", "--adapt", "lora"], "invalid adaptation mode 'lora'"),
    (["run", "--task", "ner", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["run"], "one of the arguments --task --leaderboard is required"),
    (["show", "no-such-run"], "no run 'no-such-run'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--task", "ner", "--precision", "fp16"], "invalid choice: 'fp16'"),
    (["run", "--task", "cartpole", "--precision", "bf16"], "apply to supervised tasks; 'cartpole' is a control"),
    (["run", "--leaderboard", "cpu-default", "--precision", "bf16"], "drop --precision"),
    (["run", "--leaderboard", "cpu-default", "--compile"], "drop --compile"),
    (["run", "--task", "ner", "--check-precision", "--precision", "bf16"], "--check-precision runs the plain"),
])
def test_bad_input_is_one_line_exit_2(runs: Path, args: list[str], expected: str) -> None:
    assert expected in _one_line_error(run_cli(*args, runs_dir=runs))


def test_ner_smoke_run_record_rerun_and_show(runs: Path) -> None:
    out = run_cli("run", "--task", "ner", "--protocol", "smoke", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    assert "entity_f1" in out.stdout and "F1 per type" in out.stdout
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    record = json.loads((run_dir / "result.json").read_text())
    assert set(record) >= SCHEMA_FIELDS
    assert record["status"] == "complete" and record["primary_metric"] == "entity_f1"
    assert record["primary"] == record["metrics"]["entity_f1"]
    assert record["config"]["protocol"]["name"] == "smoke" and record["config"]["task_version"] == "1"
    assert record["execution"]["batching"] == "length-grouped" and record["execution"]["precision"] == "fp32"
    assert record["execution"]["peak_mem_scope"] == "run"
    assert record["env"]["torch"] == "2.11.0" and record["env"]["device"] == "cpu"
    assert {"train_s", "eval_s", "train_examples_per_s", "eval_examples_per_s", "peak_mem_mb"} <= set(record["timing"])
    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == record["n_examples"] == 32
    assert all(len(p["pred"]) == len(p["ref"]) for p in predictions)
    assert (run_dir / "weights.safetensors").stat().st_size > 0 and (run_dir / "run.log").is_file()

    stored = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.iterdir() if p.is_file()}
    again = run_cli("run", "--task", "ner", "--protocol", "smoke", "--json", runs_dir=runs)
    assert again.returncode == 0, again.stderr
    # reuse, not a retraining: no stored file is rewritten (timing it would flake on a loaded machine)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run_dir.iterdir() if p.is_file()} == stored
    assert json.loads(again.stdout) == record
    assert "already complete" in again.stderr

    shown = run_cli("show", record["run_id"][:12], "--json", runs_dir=runs)
    assert json.loads(shown.stdout) == record
    listed = json.loads(run_cli("list", "runs", "--json", runs_dir=runs).stdout)
    assert [r["run_id"] for r in listed] == [record["run_id"]]


def test_sentiment_smoke_with_two_seeds(runs: Path) -> None:
    out = run_cli("run", "--task", "sentiment", "--protocol", "smoke", "--seeds", "0,1", "--json", "--quiet",
                  runs_dir=runs)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["seed"] for r in records] == [0, 1]
    assert len({r["run_id"] for r in records}) == 2
    assert all(set(r["metrics"]) == {"accuracy", "macro_f1", "ece"} for r in records)


def test_run_killed_mid_training_restarts_cleanly(runs: Path) -> None:
    proc = subprocess.Popen([*HARNESS, "run", "--task", "ner", "--protocol", "smoke"], env=cli_env(runs),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=runs.parent,
                            start_new_session=True)
    try:
        for line in proc.stderr:  # wait until training has started, then kill -9
            if line.startswith("data:"):
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert not (run_dir / "result.json").exists()
    assert json.loads(run_cli("list", "runs", "--json", runs_dir=runs).stdout) == []
    out = run_cli("run", "--task", "ner", "--protocol", "smoke", "--json", "--quiet", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "complete"
    assert "removing the unfinished run directory" in out.stderr
    assert (run_dir / "result.json").is_file()


def test_force_reruns_and_gives_the_same_numbers(runs: Path, tiny_text_backbone: Path) -> None:
    args = ("run", "--task", "sentiment", "--protocol", "smoke", "--backbone", str(tiny_text_backbone), "--json",
            "--quiet")
    first = json.loads(run_cli(*args, runs_dir=runs).stdout)
    second = json.loads(run_cli(*args, "--force", runs_dir=runs).stdout)
    assert first["run_id"] == second["run_id"]
    assert first["metrics"] == second["metrics"]  # seeded CPU runs reproduce exactly
    assert first["created_at"] <= second["created_at"]
    assert first["config"]["backbone_revision"].startswith("sha256:")
