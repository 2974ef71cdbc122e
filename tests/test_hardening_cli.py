"""Hardening (issue 15): the command line itself. A reader that closes stdout early (`harness show ID | head -3`)
is a quiet exit 141; `harness` alone prints its help and one error line (exit 2); every error stays on one
line, whatever the input holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import HARNESS, cli_env, run_cli
from harness.cli import main
from harness.store import RunStore

RUN_ID = "cartpole-mlp-full-smoke-s0-0123456789"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "runs"
    store = RunStore(root)
    with store.claim(RUN_ID):
        store.write_result({
            "schema_version": 1, "run_id": RUN_ID, "status": "complete", "task": "cartpole", "task_version": "1",
            "modality": "control", "backbone": "mlp", "adapt": "full", "protocol": "smoke", "seed": 0, "config": {},
            "config_hash": "0123456789" * 6 + "0123", "primary_metric": "iqm_return",
            "metrics": {"iqm_return": 42.0, "mean_return": 40.0}, "primary": 42.0, "n_examples": 5,
            "timing": {"train_s": 1.0}, "env": {"harness": "0.1.0"}, "created_at": "2026-01-01T00:00:00+00:00"})
    return root


def _closed_stdout(args: list[str], runs: Path) -> subprocess.CompletedProcess:
    """Run the CLI with its stdout's reader gone before it writes anything."""
    proc = subprocess.Popen([*HARNESS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(runs), cwd=runs.parent)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, "", err)


@pytest.mark.parametrize("args", [["list"], ["list", "protocols", "--json"], ["list", "runs"], ["show", RUN_ID],
                                  ["show", RUN_ID[:12], "--json"], ["--help"], ["run", "--help"], ["--version"]])
def test_a_closed_stdout_is_a_quiet_exit(args: list[str], runs: Path) -> None:
    out = _closed_stdout(args, runs)
    assert out.stderr == ""
    # argparse swallows the error of its own help and version output: those end as they would have (0)
    assert out.returncode == (141 if "--help" not in args and "--version" not in args else 0), out


def test_a_pipeline_into_head_prints_no_error(runs: Path) -> None:
    command = " ".join(HARNESS) + " list protocols | head -3"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                         env=cli_env(runs), cwd=runs.parent, timeout=120)
    assert out.stderr == "" and len(out.stdout.splitlines()) == 3 and out.returncode in (0, 141)


def test_no_command_prints_help_and_one_error_line(runs: Path) -> None:
    out = run_cli(runs_dir=runs)
    assert out.returncode == 2 and out.stdout.startswith("usage: harness")
    assert out.stderr.splitlines() == ["harness: error: a command is required: list, run, tune, explain, report, "
                                       "compare, show, export, validate, new-task or assets (see 'harness COMMAND "
                                       "--help')"]


@pytest.mark.parametrize("args", [["run", "--task", "ner\nx"], ["show", "a\nb\r\nc"],
                                  ["report", "--leaderboard", "x\ny"], ["run", "--task", "ner", "--seed", "1\n2"],
                                  ["run", "--task", "ner", "--backbone", "/no\nsuch"],
                                  ["compare", "--backbones", "a\n,b"], ["run", "--task=--"]])
def test_errors_stay_on_one_line_whatever_the_input_holds(args: list[str], runs: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*args, "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("harness: error: "), err
