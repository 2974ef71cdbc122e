"""Hardening (issue 15): the runs directory as a path, and damaged stores, through the real CLI
(`harness.cli.main` with captured output). The runs are cartpole records made from real plans (their ids
and config hashes are the ones `harness run` makes); nothing here trains."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.planning import plan_runs
from harness.store import INDEX, RESULT, WEIGHTS, RunStore, record_problem

MODELS = ("full", "frozen")
SEEDS = (0, 1, 2)


def _record(plan: Any, primary: float) -> dict[str, Any]:
    """A complete run record as `harness.execution.execute` writes it (test_records_made_by_execution_are_valid
    checks that the two agree)."""
    spec = plan.task.spec
    return {"schema_version": 1, "run_id": plan.run_id, "status": "complete", "task": spec.name,
            "task_version": spec.version, "modality": spec.modality, "backbone": plan.backbone.name,
            "backbone_ref": plan.backbone.name, "backbone_source": plan.asset.source, "adapt": str(plan.adaptation),
            "protocol": plan.protocol.name, "seed": plan.seed, "config": plan.config, "config_hash": plan.config_hash,
            "primary_metric": spec.primary.name, "higher_is_better": True,
            "metrics": {spec.primary.name: primary, "mean_return": primary}, "primary": primary, "n_examples": 5,
            "timing": {"train_s": 1.0, "eval_s": 0.1}, "env": {"harness": "0.1.0"},
            "created_at": f"2026-01-01T00:00:0{plan.seed}+00:00"}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cartpole x mlp (full, frozen) x seeds 0, 1, 2: six complete runs (control runs: no predictions needed)."""
    root = tmp_path_factory.mktemp("healthy") / "runs"
    store = RunStore(root)
    for adapt in MODELS:
        for plan in plan_runs("cartpole", protocol="smoke", seeds=list(SEEDS), adapt=adapt):
            with store.claim(plan.run_id):
                store.write_result(_record(plan, 10.0 + plan.seed + (adapt == "full")))
    return root


@pytest.fixture
def runs(healthy: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(healthy, tmp_path / "runs"))


def _run_id(runs: Path, adapt: str = "full", seed: int = 2) -> str:
    (found,) = [p.name for p in runs.iterdir() if p.name.startswith(f"cartpole-mlp-{adapt}-smoke-s{seed}-")]
    return found


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(result: tuple[int, str, str], code: int = 2) -> str:
    returned, _, err = result
    lines = err.strip().splitlines()
    assert returned == code and len(lines) == 1, result
    assert lines[0].startswith("harness: error: ") and "Traceback" not in err and "unexpected" not in err
    return lines[0]


# --- the runs directory as a path ------------------------------------------------------------
def _reading_commands(runs_dir: Path, out: Path) -> list[list[str | Path]]:
    return [["list", "runs", "--runs-dir", runs_dir], ["show", "cartpole", "--runs-dir", runs_dir],
            ["report", "--runs-dir", runs_dir, "--out", out / "report"],
            ["compare", "--backbones", "mlp:full,mlp:frozen", "--runs-dir", runs_dir, "--out", out / "compare"]]


def test_a_missing_runs_directory_is_an_empty_store_and_is_not_created(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "fresh" / "runs"
    assert cli(capsys, "list", "runs", "--runs-dir", missing)[:2] == (0, "(no runs)\n")
    assert json.loads(cli(capsys, "list", "runs", "--json", "--runs-dir", missing)[1]) == []
    assert "no run 'x'" in one_line_error(cli(capsys, "show", "x", "--runs-dir", missing))
    assert "no complete runs" in one_line_error(cli(capsys, "report", "--runs-dir", missing, "--out", tmp_path / "r"))
    assert "no complete runs" in one_line_error(cli(capsys, "compare", "--backbones", "mlp:full,mlp:frozen",
                                                    "--runs-dir", missing, "--out", tmp_path / "c"))
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def _bad_runs_dir(kind: str, tmp_path: Path) -> Path:
    if kind == "regular file":
        (tmp_path / "file").write_text("not a folder")
        return tmp_path / "file"
    if kind == "under a file":
        (tmp_path / "file").write_text("not a folder")
        return tmp_path / "file" / "runs"
    if kind == "named pipe":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo"
    return Path({"device": "/dev/null", "under /proc": "/proc/harness-runs", "/proc itself": "/proc",
                 "under /sys": "/sys/kernel/harness-runs"}[kind])


BAD_RUNS_DIRS = ["regular file", "under a file", "named pipe", "device", "under /proc", "/proc itself", "under /sys"]


@pytest.mark.parametrize("kind", BAD_RUNS_DIRS)
def test_a_runs_directory_that_cannot_be_one_is_one_line_exit_2(kind: str, tmp_path: Path, capsys) -> None:
    runs_dir = _bad_runs_dir(kind, tmp_path)
    board = tmp_path / "b.toml"
    board.write_text('name = "b"\nprotocol = "smoke"\nseeds = [0]\ntasks = ["cartpole"]\n'
                     'models = [{ backbone = "mlp" }]\n')
    commands = [*_reading_commands(runs_dir, tmp_path),
                ["run", "--task", "cartpole", "--protocol", "smoke", "--quiet", "--runs-dir", runs_dir],
                ["run", "--leaderboard", board, "--quiet", "--runs-dir", runs_dir],
                ["explain", "cartpole", "--runs-dir", runs_dir]]
    for command in commands:
        line = one_line_error(cli(capsys, *command))
        assert f"runs directory {runs_dir}" in line, (command, line)
    assert not (tmp_path / "report").exists() and not (tmp_path / "compare").exists()
    if kind in ("regular file", "under a file"):
        assert (tmp_path / "file").read_text() == "not a folder"


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a folder unwritable for this process (the tests may run as root, whom permissions do not stop)."""
    real = os.access

    def make(folder: Path) -> None:
        def access(path: Any, mode: int, **kwargs: Any) -> bool:
            inside = Path(path).resolve() == folder.resolve() or folder.resolve() in Path(path).resolve().parents
            return False if inside and mode & os.W_OK else real(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)

    return make


def test_a_read_only_runs_directory_is_read_but_never_written(runs: Path, tmp_path: Path, capsys,
                                                             read_only: Callable[[Path], None]) -> None:
    (runs / INDEX).unlink()
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    read_only(runs)
    code, out, _ = cli(capsys, "list", "runs", "--json", "--runs-dir", runs)
    assert code == 0 and len(json.loads(out)) == 6
    assert cli(capsys, "show", _run_id(runs), "--runs-dir", runs)[0] == 0
    assert cli(capsys, "report", "--runs-dir", runs, "--out", tmp_path / "r")[0] == 0
    assert not (runs / INDEX).exists()  # the index lived in memory
    for command in (["run", "--task", "cartpole", "--protocol", "smoke", "--quiet"], ["explain", _run_id(runs)]):
        line = one_line_error(cli(capsys, *command, "--runs-dir", runs))
        assert f"runs directory {runs} is not writable" in line
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before


def _bad_out(kind: str, tmp_path: Path, read_only: Callable[[Path], None]) -> Path:
    if kind == "unwritable folder":
        (tmp_path / "locked").mkdir()
        read_only(tmp_path / "locked")
        return tmp_path / "locked" / "report"
    if kind in ("existing file", "under a file"):
        (tmp_path / "file").write_text("keep me")
        return tmp_path / "file" if kind == "existing file" else tmp_path / "file" / "report"
    return Path({"device": "/dev/null", "under /proc": "/proc/harness-report"}[kind])


@pytest.mark.parametrize("kind", ["existing file", "under a file", "device", "under /proc", "unwritable folder"])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_an_out_folder_that_cannot_be_written_is_one_line_exit_2(kind: str, command: str, runs: Path,
                                                                 tmp_path: Path, capsys,
                                                                 read_only: Callable[[Path], None]) -> None:
    out = _bad_out(kind, tmp_path, read_only)
    args = ["report"] if command == "report" else ["compare", "--backbones", "mlp:full,mlp:frozen"]
    line = one_line_error(cli(capsys, *args, "--runs-dir", runs, "--out", out))
    assert f"cannot write the report to {out}" in line
    if kind in ("existing file", "under a file"):
        assert (tmp_path / "file").read_text() == "keep me"


# --- damaged records --------------------------------------------------------------------------
def _edit(**changes: Any) -> Callable[[dict[str, Any]], str]:
    return lambda record: json.dumps(record | changes)


def _without(*keys: str) -> Callable[[dict[str, Any]], str]:
    return lambda record: json.dumps({k: v for k, v in record.items() if k not in keys})


DAMAGE: dict[str, Callable[[dict[str, Any]], str | bytes]] = {
    "truncated": lambda record: json.dumps(record)[:120],
    "empty": lambda record: "",
    "not UTF-8": lambda record: b"\xff\xfe{" + json.dumps(record).encode()[:50],
    "a JSON list": lambda record: "[]",
    "a JSON string": lambda record: '"complete"',
    "a JSON null": lambda record: "null",
    "an object with two fields": lambda record: json.dumps({"run_id": record["run_id"], "status": "complete"}),
    "no metrics": _without("metrics"),
    "no seed, task or config": _without("seed", "task", "config"),
    "a seed past SQLite's integers": _edit(seed=2**70),
    "a negative seed": _edit(seed=-3),
    "a seed in text": _edit(seed="zero"),
    "a metric in text": _edit(metrics={"iqm_return": "high", "mean_return": 1.0}),
    "metrics as a list": _edit(metrics=[1, 2]),
    "an unknown status": _edit(status="done"),
    "another run's id": _edit(run_id="cartpole-mlp-full-smoke-s9-0000000000"),
    "a path as run id": _edit(run_id="../elsewhere"),
    "complete without its primary": _edit(primary=None),
    "the primary metric missing": _edit(metrics={"mean_return": 1.0}),
    "a newer schema": _edit(schema_version=99),
    "timing as a list": _edit(timing=[1.0]),
    "a half explanation block": _edit(explanation={"method": "x"}),
    "a table as task": _edit(task={"name": "cartpole"}),
}


def _damage(runs: Path, damage: str) -> tuple[str, Path]:
    victim = _run_id(runs)
    path = runs / victim / RESULT
    text = DAMAGE[damage](json.loads(path.read_text()))
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return victim, path


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_list_and_show_survive_a_damaged_record(damage: str, runs: Path, capsys) -> None:
    victim, path = _damage(runs, damage)
    code, out, _ = cli(capsys, "list", "runs", "--json", "--runs-dir", runs)
    rows = {r["run_id"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) == 6 and rows[victim]["status"] == "damaged" and rows[victim]["problem"]
    assert all(r["status"] == "complete" and r["problem"] is None for k, r in rows.items() if k != victim)
    code, out, _ = cli(capsys, "list", "runs", "--runs-dir", runs)
    assert code == 0 and "problem" in out.splitlines()[0]
    assert [line.split()[1] for line in out.splitlines() if line.startswith(victim)] == ["damaged"]
    for command in ("show", "explain"):
        line = one_line_error(cli(capsys, command, victim, "--runs-dir", runs))
        assert f"run {victim} is damaged: {path}: " in line and ("harness run" in line or "delete" in line)
    assert cli(capsys, "show", _run_id(runs, seed=1), "--runs-dir", runs)[0] == 0
    assert RunStore(runs).find_complete(victim, "any") is None  # `harness run` makes it again


# reports read records through the same check (RunStore.scan): one damage of each kind is enough here
@pytest.mark.parametrize("damage", ["truncated", "not UTF-8", "a JSON list", "no metrics",
                                    "a seed past SQLite's integers", "a metric in text"])
def test_report_and_compare_leave_out_a_damaged_record_with_a_warning(damage: str, runs: Path, tmp_path: Path,
                                                                      capsys) -> None:
    victim, _ = _damage(runs, damage)
    for command in (["report", "--out", tmp_path / "r"],
                    ["compare", "--backbones", "mlp:full,mlp:frozen", "--out", tmp_path / "c"]):
        code, _, err = cli(capsys, *command, "--runs-dir", runs)
        assert code == 0 and f"leaving out the damaged run {victim}" in err, (command, err)
    report = json.loads((tmp_path / "r" / "leaderboard.json").read_text())
    assert "cartpole / mlp (full): seeds 2" in report["missing"]  # never averaged in


def test_the_index_follows_records_damaged_and_mended_after_it_was_built(runs: Path, capsys) -> None:
    victim = _run_id(runs)
    path = runs / victim / RESULT
    good = path.read_text()
    statuses = []
    for text in (good, good[:50], good):
        path.write_text(text)
        rows = json.loads(cli(capsys, "list", "runs", "--json", "--runs-dir", runs)[1])
        statuses.append(next(r["status"] for r in rows if r["run_id"] == victim))
    assert statuses == ["complete", "damaged", "complete"]
    shutil.rmtree(runs / _run_id(runs, seed=1))
    assert len(json.loads(cli(capsys, "list", "runs", "--json", "--runs-dir", runs)[1])) == 5
    (runs / INDEX).write_bytes(b"not an index")
    assert len(json.loads(cli(capsys, "list", "runs", "--json", "--runs-dir", runs)[1])) == 5


def test_an_index_of_the_older_layout_is_rebuilt_quietly(runs: Path) -> None:
    import logging
    import sqlite3

    (runs / INDEX).unlink()
    with sqlite3.connect(runs / INDEX) as db:  # the layout before damaged records had a row of their own
        db.execute("CREATE TABLE runs (run_id, config_hash, status, task, task_version, backbone, adapt, protocol, "
                   "seed, primary_metric, primary_value, created_at, PRIMARY KEY (run_id))")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("harness").addHandler(handler)
    try:
        assert len(RunStore(runs).query(status="complete")) == 6
    finally:
        logging.getLogger("harness").removeHandler(handler)
    assert seen == []


def test_damaged_predictions_are_one_line_naming_the_file(runs: Path) -> None:
    from harness.errors import DamagedRecord

    store, victim = RunStore(runs), _run_id(runs)
    for text in ('{"id": 0, "pred": 1}\n', "not json\n", '[1, 2]\n', b"\xff\n"):
        (runs / victim / "predictions.jsonl").write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(DamagedRecord, match=r"predictions.jsonl is missing or damaged \("):
            store.read_predictions(victim)
    (runs / victim / "predictions.jsonl").unlink()
    with pytest.raises(DamagedRecord, match="harness run --task cartpole"):
        store.read_predictions(victim)


def test_records_made_by_execution_are_valid() -> None:
    """The schema `record_problem` checks is the one `harness.execution` writes."""
    from harness.execution import base_record
    from harness.store import OPTIONAL_FIELDS, RECORD_FIELDS

    (plan,) = plan_runs("cartpole", protocol="smoke", seeds=[7])
    record = base_record(plan, "cpu")
    assert set(record) <= set(RECORD_FIELDS) | set(OPTIONAL_FIELDS)
    assert "'status' must be complete or failed" in record_problem(record)
    assert record_problem(record | {"status": "failed", "error": "boom"}) is None
    complete = record | {"status": "complete", "metrics": {"iqm_return": 1.0}, "primary": 1.0}
    assert record_problem(complete, folder=plan.run_id) is None
    assert record_problem(_record(plan, 1.0), folder=plan.run_id) is None


# --- damaged weights --------------------------------------------------------------------------
def _weights(kind: str, path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    if kind == "missing":
        return
    save_file({"policy.x": torch.zeros(64)}, str(path), metadata={"config_hash": "0" * 64})
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "random bytes": os.urandom(256), "empty": b"",
                      "another run's": data}[kind])


@pytest.mark.parametrize("kind", ["truncated", "random bytes", "empty", "missing", "another run's"])
def test_damaged_weights_make_explain_one_line_saying_how_to_recover(kind: str, runs: Path, capsys) -> None:
    victim = _run_id(runs)
    path = runs / victim / WEIGHTS
    _weights(kind, path)
    line = one_line_error(cli(capsys, "explain", victim, "--device", "cpu", "--quiet", "--runs-dir", runs))
    assert f"its weights file {path} is damaged" in line
    assert "harness run --task cartpole --backbone mlp --adapt full --protocol smoke --seed 2 --force" in line
    assert not (runs / victim / "explanations").exists()
