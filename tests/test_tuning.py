"""Per-model tuning on dev: search spaces, grids, the choice (made on dev, never on test), tuned leaderboards,
and `harness tune` through the real CLI (trials recorded and reused, only the choice tested)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from harness.errors import UsageError
from harness.leaderboard import Leaderboard, ModelSelection, parse_leaderboard
from harness.planning import plan_runs
from harness.protocol import TrainingProtocol, check_search_space
from harness.task import TASKS
from harness.tuning import choose, grid, search_space


def test_a_search_space_is_checked_and_never_part_of_a_runs_configuration() -> None:
    protocol = TrainingProtocol(epochs=1, search={"lr": [1e-4, 3e-4], "epochs": [1, 2]})
    assert dict(protocol.search) == {"lr": (1e-4, 3e-4), "epochs": (1, 2)}
    assert "search" not in protocol.to_dict()
    assert protocol.with_changes(lr=3e-4).search == protocol.search
    for bad, message in [({"dropout": [0.1]}, "cannot be tuned"), ({"lr": []}, "non-empty list"),
                         ({"lr": [0, 1e-4]}, "positive numbers"), ({"epochs": [1.5]}, "whole numbers"),
                         ({"lr": [1e-4, 1e-4]}, "twice"), ({"lr": "1e-4"}, "non-empty list")]:
        with pytest.raises(ValueError, match=message):
            check_search_space(bad)
    # the built-in protocols declare grids, and their runs' identities did not move
    (plan,) = plan_runs("sentiment", protocol="smoke")
    assert "search" not in plan.config["protocol"] and TASKS.get("sentiment").protocols["quick"].search


def test_grid_and_the_space_a_model_is_tuned_over() -> None:
    assert grid({"lr": (1, 2), "head_lr": (3, 4)}) == [{"lr": 1, "head_lr": 3}, {"lr": 1, "head_lr": 4},
                                                       {"lr": 2, "head_lr": 3}, {"lr": 2, "head_lr": 4}]
    full, frozen = ModelSelection("minilm", "full"), ModelSelection("minilm", "frozen")
    board = Leaderboard("b", "", "smoke", (0,), ("sentiment",), (full, frozen), tune=True)
    assert search_space(board, "sentiment", full) == {"lr": (1e-4, 3e-4), "head_lr": (1e-3, 3e-3)}
    assert search_space(board, "sentiment", frozen) == {"head_lr": (1e-3, 3e-3)}  # a frozen backbone ignores lr
    own = ModelSelection("minilm", "full", search=(("epochs", (1, 2)),))
    assert search_space(board, "sentiment", own) == {"epochs": (1, 2)}
    only_lr = Leaderboard("b", "", "smoke", (0,), ("sentiment",), (frozen,), tune=True, search=(("lr", (1e-4,)),))
    with pytest.raises(UsageError, match="nothing to tune for sentiment / minilm \\(frozen\\)"):
        search_space(only_lr, "sentiment", frozen)
    control = Leaderboard("c", "", "smoke", (0,), ("cartpole",), (ModelSelection("mlp", "full"),), tune=True)
    with pytest.raises(UsageError, match="control task"):
        search_space(control, "cartpole", ModelSelection("mlp", "full"))


def test_the_choice_is_made_on_dev_never_on_test() -> None:
    space = {"lr": (1e-4, 3e-4, 1e-3)}
    # dev and test disagree: 1e-3 is best on test, 3e-4 on dev; the trials only ever carry dev
    test_scores = {1e-4: 0.70, 3e-4: 0.60, 1e-3: 0.90}
    trials = [{"changes": (("lr", lr),), "seed": seed, "dev": dev, "test_never_read": test_scores[lr]}
              for lr, devs in {1e-4: (0.50, 0.52), 3e-4: (0.80, 0.78), 1e-3: (0.40, 0.42)}.items()
              for seed, dev in zip((0, 1), devs, strict=True)]
    block = choose(space, trials, "accuracy", True, [0, 1])
    assert block["chosen"] == {"lr": 3e-4} and block["selected_by"] == "mean dev accuracy over seeds 0, 1"
    assert [t["mean_dev"] for t in block["trials"]] == pytest.approx([0.51, 0.79, 0.41])
    assert choose(space, trials, "wer", False, [0, 1])["chosen"] == {"lr": 1e-3}  # lower is better
    tied = [t | {"dev": 0.5} for t in trials]
    assert choose(space, tied, "accuracy", True, [0, 1])["chosen"] == {"lr": 1e-4}  # ties: the earlier point
    partial = [t for t in trials if not (t["changes"] == (("lr", 3e-4),) and t["seed"] == 1)]
    assert choose(space, partial, "accuracy", True, [0, 1])["chosen"] == {"lr": 1e-4}  # a missing trial: not chosen
    with pytest.raises(UsageError, match="no trial"):
        choose(space, [], "accuracy", True, [0])


def test_tuned_leaderboard_definitions() -> None:
    base = {"name": "t", "protocol": "smoke", "seeds": [0, 1], "tasks": ["sentiment"],
            "models": [{"backbone": "minilm", "adapt": "full", "search": {"lr": [1e-4, 3e-4]}}]}
    board = parse_leaderboard(base | {"tune": True, "tune_seeds": [1], "search": {"head_lr": [1e-3]}})
    assert board.tune and board.trial_seeds == (1,) and board.search == (("head_lr", (1e-3,)),)
    assert board.models[0].search == (("lr", (1e-4, 3e-4)),)
    assert parse_leaderboard(base | {"tune": True}).trial_seeds == (0,)
    for change, message in [({}, "tune: tune_seeds and search spaces need tune = true"),
                            ({"tune": "yes"}, "tune: must be true or false"),
                            ({"tune": True, "search": {"dropout": [0.1]}}, "search: search space: 'dropout'"),
                            ({"tune": True, "tune_seeds": [0, 0]}, "tune_seeds\\[1\\]: seed 0 is given twice")]:
        with pytest.raises(UsageError, match=message):
            parse_leaderboard(base | change)


TOPICS = ("good", "bad")


def _flipped_test_task(folder: Path) -> Path:
    """A two-class text task whose test labels are the opposite of train's and dev's: a head that learns scores
    high on dev and low on test, so a choice made on test would never pick it."""
    folder.mkdir()
    for split, n, flip in (("train", 48, False), ("validation", 16, False), ("test", 16, True)):
        rows = ["text,label"]
        for i in range(n):
            word = TOPICS[i % 2]
            rows.append(f"{word} {word} {word} {i},{TOPICS[(i + flip) % 2]}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    path = folder / "fliptest.toml"
    path.write_text('name = "fliptest"\nversion = "1"\nkind = "text-classification"\n'
                    'description = "test labels flipped"\nlabels = ["good", "bad"]\n\n[data]\nformat = "csv"\n'
                    'files = { train = "train.csv", validation = "validation.csv", test = "test.csv" }\n\n'
                    '[protocols.smoke]\nepochs = 8\nbatch_size = 8\nwarmup_ratio = 0.0\n')
    return path


def test_tune_through_the_cli_chooses_on_dev_records_trials_and_reuses_them(tmp_path: Path,
                                                                              tiny_text_backbone: Path) -> None:
    task = _flipped_test_task(tmp_path / "task")
    runs = tmp_path / "runs"
    args = ["tune", "--task", str(task), "--backbone", str(tiny_text_backbone), "--adapt", "frozen",
            "--protocol", "smoke", "--seeds", "0,1", "--search", "head_lr=0.5,0.000001", "--quiet"]
    out = run_cli(*args, "--json", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    block = done["tuning"]
    assert block["space"] == {"head_lr": [0.5, 1e-6]} and block["seeds"] == [0]
    # the trained head (0.5) is right on dev and wrong on test (labels flipped there): dev decided
    means = {t["point"]["head_lr"]: t["mean_dev"] for t in block["trials"]}
    assert block["chosen"] == {"head_lr": 0.5} and means[0.5] >= 0.75, means
    assert all(t["primary"] <= 0.25 for t in done["tested"]), done["tested"]  # a test-driven choice: never this
    assert len(done["trials"]["ran"]) == 2 and [t["seed"] for t in done["tested"]] == [0, 1]
    for trial_id in done["trials"]["ran"]:
        record = json.loads((runs / trial_id / "result.json").read_text())
        assert record["role"] == "trial" and record["evaluated_on"] == "dev" and record["n_examples"] == 16
        ids = [json.loads(line)["id"] for line in (runs / trial_id / "predictions.jsonl").read_text().splitlines()]
        assert all(i.startswith("validation") for i in ids)  # scored on dev; the test split never loaded
    for tested in done["tested"]:
        record = json.loads((runs / tested["run_id"] / "result.json").read_text())
        assert record["config"]["tuning"]["chosen"] == {"head_lr": 0.5}
        assert record["config"]["protocol"]["head_lr"] == 0.5 and "role" not in record
        assert {t["run_id"] for t in record["tuning"]["trial_runs"]} == set(done["trials"]["ran"])
    again = run_cli(*args, runs_dir=runs)
    assert again.returncode == 0, again.stderr
    assert "<- chosen" in again.stdout and "tested seed 1" in again.stdout
    listing = json.loads(run_cli("list", "runs", "--json", runs_dir=runs).stdout)
    assert len(listing) == 4  # 2 trials + 2 tested runs; the rerun made nothing new
    report = json.loads(run_cli("report", "--json", "--out", str(tmp_path / "report"), runs_dir=runs,
                                HARNESS_TASK_PATH=str(task)).stdout)  # a task named by path: found again here
    (cell,) = report["cells"]
    assert cell["tuning"]["chosen"] == {"head_lr": 0.5} and cell["seeds"] == [0, 1]  # trials are never reported
    assert "## Tuning" in (tmp_path / "report" / "README.md").read_text()


def test_bad_tune_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args, expected in [(["--task", "cartpole"], "control task"),
                           (["--task", "sentiment", "--search", "lr"], "expected FIELD=V1,V2"),
                           (["--task", "sentiment", "--search", "dropout=0.1"], "cannot be tuned"),
                           (["--task", "sentiment", "--search", "lr=1e-4", "--search", "lr=3e-4"], "given twice")]:
        out = run_cli("tune", *args, runs_dir=tmp_path / "runs")
        assert out.returncode == 2 and expected in out.stderr and len(out.stderr.strip().splitlines()) == 1, \
            out.stderr
