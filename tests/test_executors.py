"""Leaderboards on an executor: the local one and Ray (one local Ray instance for the whole module, 2 CPUs,
no dashboard) give the same runs; faults (a worker killed mid-cell, a driver killed mid-board, a second
runner on the same runs directory) never leave a half-written run, never run a cell twice, never fail one."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HARNESS, SESSION_CACHE, cli_env
from harness import api
from harness.executors.ray_executor import KILL_ONCE_ENV, RAY_MISSING
from harness.store import RunStore


def _board(path: Path, seeds: list[int], cartpole: bool = True, text_backbone: Path | None = None) -> Path:
    models = []
    if cartpole:
        models += ['{ backbone = "mlp", adapt = "full" }', '{ backbone = "mlp", adapt = "frozen" }']
    if text_backbone is not None:
        models += [f'{{ backbone = "{text_backbone}", adapt = "{adapt}", tasks = ["sentiment"] }}'
                   for adapt in ("full", "frozen")]
    tasks = ['"cartpole"'] * cartpole + ['"sentiment"'] * (text_backbone is not None)
    path.write_text(f'name = "{path.stem}"\nprotocol = "smoke"\nseeds = {seeds}\ntasks = [{", ".join(tasks)}]\n'
                    f'models = [{", ".join(models)}]\n')
    return path


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory, tiny_text_backbone: Path) -> dict[str, Path]:
    """smoke: cartpole x mlp full/frozen and sentiment x a tiny BERT full/frozen, seed 0 (4 cells); cartpole: the
    cartpole cells of seeds 0 and 1; pair: the sentiment cells of seed 0."""
    root = tmp_path_factory.mktemp("boards")
    return {"smoke": _board(root / "smoke.toml", [0], text_backbone=tiny_text_backbone),
            "cartpole": _board(root / "cartpole.toml", [0, 1]),
            "pair": _board(root / "pair.toml", [0], cartpole=False, text_backbone=tiny_text_backbone)}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One Ray instance for the module; its workers inherit this environment (offline, the session cache)."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"HF_HUB_OFFLINE": "1", "HARNESS_OFFLINE": "1",
                            "HARNESS_CACHE_DIR": str(SESSION_CACHE)}.items():
            patch.setenv(name, value)
        context = ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        try:
            yield context.address_info["gcs_address"]
        finally:
            ray.shutdown()


def _complete_runs_only(runs: Path) -> list[str]:
    """The run folders in a runs directory, each asserted complete (nothing half-written or staged)."""
    folders = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for folder in folders:
        record = json.loads((folder / "result.json").read_text())
        assert record["status"] == "complete", folder
        assert {"predictions.jsonl", "weights.safetensors", "run.log"} <= {p.name for p in folder.iterdir()}
    assert not list((runs / ".staging").glob("*")) if (runs / ".staging").exists() else True
    return sorted(p.name for p in folders)


def test_ray_gives_the_same_runs_as_the_local_executor(boards: dict[str, Path], ray_address: str,
                                                       tmp_path: Path) -> None:
    local = api.run_leaderboard(str(boards["smoke"]), runs_dir=tmp_path / "local", progress=False)
    remote = api.run_leaderboard(str(boards["smoke"]), runs_dir=tmp_path / "ray", progress=False, executor="ray")
    assert len(local["ran"]) == 4 and sorted(remote["ran"]) == sorted(local["ran"])
    assert remote["failed"] == [] and remote["reused"] == [] and remote["running_elsewhere"] == []
    assert _complete_runs_only(tmp_path / "ray") == _complete_runs_only(tmp_path / "local")
    here, there = RunStore(tmp_path / "local"), RunStore(tmp_path / "ray")
    for run_id in local["ran"]:
        a, b = here.load(run_id), there.load(run_id)
        assert a["config_hash"] == b["config_hash"] and a["metrics"] == pytest.approx(b["metrics"], abs=1e-6)
        # a Ray worker computes with its --cpus-per-run threads (1), this process with 2: the same predictions,
        # probabilities equal up to float summation order
        ours, theirs = here.read_predictions(run_id), there.read_predictions(run_id)
        assert [_rest(p) for p in ours] == [_rest(p) for p in theirs]
        assert _probs(ours) == pytest.approx(_probs(theirs), abs=1e-4)
    assert {c["where"] for c in local["per_cell"]} == {"local"}
    assert all(c["where"] != "local" and c["overhead"]["shipped_bytes"] > 0 and c["overhead"]["scheduling_s"] >= 0
               for c in remote["per_cell"])
    assert [r["run_id"] for r in there.query()] and len(there.query()) == 4  # the driver's index has them
    again = api.run_leaderboard(str(boards["smoke"]), runs_dir=tmp_path / "ray", progress=False, executor="ray")
    assert again["ran"] == [] and sorted(again["reused"]) == sorted(local["ran"])  # skipped before shipping


def _rest(row: dict) -> dict:
    """A prediction row without its probabilities."""
    pred = row["pred"]
    return row | {"pred": {k: v for k, v in pred.items() if k != "probs"} if isinstance(pred, dict) else pred}


def _probs(rows: list[dict]) -> list[float]:
    return [x for row in rows if isinstance(row["pred"], dict) for x in row["pred"].get("probs", [])]


def test_a_worker_killed_mid_cell_is_retried_and_nothing_half_written_stays(
        boards: dict[str, Path], ray_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE_ENV, f"-frozen-:{marker}")  # the frozen cell's first attempt dies (os._exit)
    summary = api.run_leaderboard(str(boards["pair"]), runs_dir=tmp_path / "runs", progress=False,
                                  executor="ray", max_retries=1)
    killed = marker.read_text()
    assert "-frozen-" in killed and killed in summary["ran"]
    assert len(summary["ran"]) == 2 and summary["failed"] == []
    assert _complete_runs_only(tmp_path / "runs") == sorted(summary["ran"])


def test_a_killed_worker_past_its_retries_fails_only_its_cell(
        boards: dict[str, Path], ray_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KILL_ONCE_ENV, f"-frozen-:{tmp_path / 'killed-once'}")
    summary = api.run_leaderboard(str(boards["pair"]), runs_dir=tmp_path / "runs", progress=False,
                                  executor="ray", max_retries=0)
    (failed,) = summary["failed"]
    assert failed[1].endswith("(frozen)") and "the Ray task failed" in failed[3]
    assert len(summary["ran"]) == 1 and _complete_runs_only(tmp_path / "runs") == summary["ran"]


def test_a_killed_driver_reruns_only_the_missing_cells(boards: dict[str, Path], ray_address: str,
                                                       tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    driver = subprocess.Popen([*HARNESS, "run", "--leaderboard", str(boards["pair"]), "--executor", "ray",
                               "--address", ray_address, "--max-parallel", "1"], env=cli_env(runs),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              start_new_session=True)
    try:
        for line in driver.stderr:  # the first cell is in the runs directory: kill -9 the driver
            if line.startswith("[1/2]") and ": ran," in line:
                os.killpg(driver.pid, signal.SIGKILL)
                break
    finally:
        driver.wait(timeout=300)
    assert driver.returncode == -signal.SIGKILL
    done = _complete_runs_only(runs)
    assert len(done) == 1
    summary = api.run_leaderboard(str(boards["pair"]), runs_dir=runs, progress=False, executor="ray")
    assert sorted(summary["reused"]) == done and len(summary["ran"]) == 1
    assert summary["failed"] == [] and len(_complete_runs_only(runs)) == 2


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_cell_another_process_holds_is_running_elsewhere(boards: dict[str, Path], tmp_path: Path,
                                                           executor: str, request: pytest.FixtureRequest) -> None:
    if executor == "ray":
        request.getfixturevalue("ray_address")
    store, held = RunStore(tmp_path / "runs"), _run_ids(boards["pair"])[0]
    with store.lock(held):  # as another runner holds the cell it is running
        summary = api.run_leaderboard(str(boards["pair"]), runs_dir=store.root, progress=False, executor=executor)
    assert summary["running_elsewhere"] == [held] and summary["failed"] == [] and len(summary["ran"]) == 1


def test_a_reused_cell_another_process_is_explaining_is_running_elsewhere_not_failed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from harness import execution
    from harness.errors import RunInProgress
    from harness.executors.base import CellJob, CellResult
    from harness.leaderboard import Cell, ModelSelection
    from harness.progress import ProgressReporter

    def held(*args: object, **kwargs: object) -> None:
        raise RunInProgress("run r1 is already in progress in another process (pid 1)")

    monkeypatch.setattr(execution, "explain_outcomes", held)
    job = CellJob(1, Cell("ner", ModelSelection("minilm", "full"), 0), None)
    executor = SimpleNamespace(device="cpu")  # only its device is read
    result = execution._explained(CellResult(job, "reused", {"run_id": "r1"}), RunStore(tmp_path), executor, True,
                                  ProgressReporter(False))
    assert result.status == "elsewhere" and "another process" in result.error


def _run_ids(board: Path) -> list[str]:
    from harness.planning import plan_cell

    loaded = api.load_leaderboard(str(board))
    return [plan_cell(loaded, cell).run_id for cell in loaded.cells()]


def test_two_runners_on_one_runs_directory_finish_the_board_between_them(boards: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runners = [subprocess.Popen([*HARNESS, "run", "--leaderboard", str(boards["cartpole"]), "--json", "--quiet"],
                                env=cli_env(runs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path) for _ in range(2)]
    outputs = [runner.communicate(timeout=600) for runner in runners]
    assert [r.returncode for r in runners] == [0, 0], [err for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]
    every = set(_run_ids(boards["cartpole"]))
    first, second = (set(s["ran"]) for s in summaries)
    assert not first & second and first | second == every  # every cell run exactly once
    for s in summaries:
        assert s["failed"] == [] and set(s["ran"]) | set(s["reused"]) | set(s["running_elsewhere"]) == every
    assert _complete_runs_only(runs) == sorted(every)


@pytest.mark.parametrize(("args", "expected"), [
    (["--executor", "ray"], RAY_MISSING),
    (["--address", "auto"], "--address: only for --executor ray"),
    (["--executor", "local", "--max-parallel", "2"], "--max-parallel: only for --executor ray"),
])
def test_executor_usage_errors_are_one_line_exit_2(boards: dict[str, Path], tmp_path: Path, args: list[str],
                                                   expected: str) -> None:
    """Without ray installed (sys.modules['ray'] = None makes `import ray` fail), --executor ray is one line."""
    code = "import sys; sys.modules['ray'] = None; from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, "run", "--leaderboard", str(boards["pair"]), *args],
                         capture_output=True, text=True, env=cli_env(tmp_path / "runs"), timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"harness: error: {expected}")
    assert not (tmp_path / "runs").exists()
