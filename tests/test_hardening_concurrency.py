"""Two runners on one run: the second waits for the first and uses its result (or stops with --no-wait), and a
claim never wipes a run that another process completed while this one waited for the lock."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import HARNESS, cli_env, run_cli
from harness.errors import AlreadyComplete, RunInProgress
from harness.execution import run_plans
from harness.planning import plan_runs
from harness.progress import ProgressReporter
from harness.store import RESULT, RunStore

RUN = ("run", "--task", "cartpole", "--protocol", "smoke")


def _complete_record(run_id: str, digest: str) -> dict:
    return {"run_id": run_id, "config_hash": digest, "status": "complete"}


def test_a_claim_does_not_wipe_a_run_completed_while_it_waited(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_dir = store.run_dir("r1")
    run_dir.mkdir(parents=True)
    (run_dir / RESULT).write_text(json.dumps(_complete_record("r1", "abc")))
    store.find_complete = lambda run_id, digest: _complete_record(run_id, digest)  # type: ignore[method-assign]
    with pytest.raises(AlreadyComplete) as caught, store.claim("r1", "abc"):
        pass
    assert caught.value.record["run_id"] == "r1"
    assert (run_dir / RESULT).is_file()  # untouched
    with store.claim("r1") as fresh:  # no digest (a forced rerun): the folder is replaced
        assert list(fresh.iterdir()) == []


def test_a_held_lock_names_its_holder(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.ensure_writable()
    (tmp_path / ".locks").mkdir()
    with open(tmp_path / ".locks" / "r1.lock", "a+") as other:  # another open file: another holder
        fcntl.flock(other, fcntl.LOCK_EX)
        other.write("4242\n")
        other.flush()
        held = r"already in progress in another process \(pid 4242\)"
        with pytest.raises(RunInProgress, match=held), store.claim("r1"):
            pass


def _hold_lock(runs: Path, run_id: str):
    """This test process stands in for another runner: it holds the run's lock through its own open file."""
    (runs / ".locks").mkdir(parents=True, exist_ok=True)
    handle = open(runs / ".locks" / f"{run_id}.lock", "a+")  # noqa: SIM115 - released by the caller
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def test_no_wait_stops_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plan = plan_runs("cartpole", protocol="smoke")[0]
    handle = _hold_lock(runs, plan.run_id)
    try:
        proc = run_cli(*RUN, "--no-wait", runs_dir=runs, timeout=120)
    finally:
        handle.close()
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == (f"harness: error: run {plan.run_id} is already in progress in another process "
                         f"(pid {os.getpid()})")
    assert not store_dirs(runs)


def store_dirs(runs: Path) -> list[str]:
    """The run folders in a runs directory (not its lock folder or index)."""
    return sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) if runs.exists() else []


def test_a_second_identical_run_waits_and_uses_the_first_ones_result(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    store = RunStore(runs)
    plan = plan_runs("cartpole", protocol="smoke")[0]
    with store.hold(plan.run_id):
        waiting = subprocess.Popen([*HARNESS, *RUN, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=cli_env(runs), cwd=tmp_path)
        try:
            seen = []
            while not any("waiting for it to finish" in line for line in seen):
                line = waiting.stderr.readline()
                assert line, f"the second runner ended without waiting: {''.join(seen)}"
                seen.append(line)
            assert f"(pid {os.getpid()})" in seen[-1]
            assert waiting.poll() is None  # still waiting while this process runs the run
            [outcome] = run_plans([plan], store, "cpu", ProgressReporter(False))
        except BaseException:
            waiting.kill()
            raise
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    record = json.loads(out)
    assert record["run_id"] == plan.run_id == outcome.record["run_id"]
    assert record == json.loads(json.dumps(outcome.record))  # the same run, not a second one
    assert "already complete: using the stored result" in err
    assert store_dirs(runs) == [plan.run_id]


def test_a_waiting_runner_runs_the_run_itself_when_the_holder_left_it_unfinished(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plan = plan_runs("cartpole", protocol="smoke")[0]
    handle = _hold_lock(runs, plan.run_id)
    (runs / plan.run_id).mkdir()
    (runs / plan.run_id / "predictions.jsonl").write_text("half-written by a runner that was killed")
    waiting = subprocess.Popen([*HARNESS, *RUN, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=cli_env(runs), cwd=tmp_path)
    try:
        line = ""
        while "waiting for it to finish" not in line:
            line = waiting.stderr.readline()
            assert line, "the second runner ended without waiting"
    finally:
        handle.close()  # the holder dies without finishing
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    record = json.loads(out)
    assert record["run_id"] == plan.run_id and record["status"] == "complete"
    assert "removing the unfinished run directory" in err
