"""Leaderboard reports and comparisons from real (tiny) runs, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_text_backbone: Path) -> Path:
    """Two models (tiny backbone, frozen and full) x sentiment and ner x 2 seeds, smoke protocol."""
    root = tmp_path_factory.mktemp("report")
    board = root / "tiny.toml"
    board.write_text(
        'name = "tiny"\ndescription = "tiny models for tests"\nprotocol = "smoke"\nseeds = [0, 1]\n'
        'tasks = ["sentiment", "ner"]\n'
        f'models = [{{ backbone = "{tiny_text_backbone}", adapt = "full", tasks = ["sentiment", "ner"] }},\n'
        f'          {{ backbone = "{tiny_text_backbone}", adapt = "frozen", tasks = ["sentiment", "ner"] }}]\n')
    out = run_cli("run", "--leaderboard", str(board), "--quiet", runs_dir=root / "runs")
    assert out.returncode == 0, out.stderr
    assert "8 run now" in out.stdout
    return root


def _report(workspace: Path, *extra: str, out: str = "report") -> dict:
    result = run_cli("report", "--leaderboard", str(workspace / "tiny.toml"), "--out", str(workspace / out),
                     "--json", *extra, runs_dir=workspace / "runs")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_leaderboard_rerun_skips_complete_cells(workspace: Path) -> None:
    out = run_cli("run", "--leaderboard", str(workspace / "tiny.toml"), "--quiet", runs_dir=workspace / "runs")
    assert out.returncode == 0 and "0 run now, 8 already complete" in out.stdout


def test_report_files_intervals_and_aggregate(workspace: Path) -> None:
    report = _report(workspace)
    folder = workspace / "report"
    for name in ("README.md", "index.html", "leaderboard.csv", "leaderboard.json", "scores.svg", "ranks.svg"):
        assert (folder / name).is_file(), name
    assert len(report["cells"]) == 4 and all(c["complete"] for c in report["cells"])
    for cell in report["cells"]:
        assert cell["low"] <= cell["estimate"] <= cell["high"]
        assert cell["method"].startswith("hierarchical bootstrap")
        assert cell["efficiency"]["train_s"] > 0
    ranks = [a["mean_rank"] for a in report["aggregate"]]
    assert sum(ranks) == pytest.approx(3.0) and all(1 <= r <= 2 for r in ranks)  # two models, average ranks
    assert all(a["rank_low"] <= a["mean_rank"] <= a["rank_high"] for a in report["aggregate"])
    html = (folder / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: nothing fetched
    assert html.count("<tr data-model=") == 2


def test_report_marks_the_best_model_by_paired_tests_and_draws_the_frontier(workspace: Path) -> None:
    report = _report(workspace, out="report-marks")
    for task in ("sentiment", "ner"):
        cells = [c for c in report["cells"] if c["task"] == task]
        best = [c for c in cells if c["mark"] == "best"]
        assert len(best) == 1 and best[0]["vs_best"] is None
        (other,) = [c for c in cells if c is not best[0]]
        test = other["vs_best"]
        assert test["best"] == best[0]["model"] and test["seeds"] == [0, 1]
        assert test["test"] == "paired bootstrap over seeds and test examples" and 0 < test["p_holm"] <= 1
        assert test["low"] <= test["difference"] <= test["high"]
        assert test["difference"] == pytest.approx(best[0]["estimate"] - other["estimate"], abs=1e-9)
        assert other["mark"] == ("tied" if test["p_holm"] >= 0.05 else None)
    assert [g["tasks"] for g in report["groups"]] == [["sentiment", "ner"]]  # the two models share both tasks
    frontiers = {f["task"]: f for f in report["frontiers"]}
    assert set(frontiers) == {"sentiment", "ner"}
    for frontier in frontiers.values():
        costs = {c["cost"]: c for c in frontier["costs"]}
        assert "train_s" in costs and "params" not in costs  # a folder backbone has no registered size
        assert 1 <= len(costs["train_s"]["front"]) <= 2
        assert (workspace / "report-marks" / frontier["plot"]).read_text().startswith("<svg")
    (budget,) = report["budgets"]
    assert budget["tasks"] == ["ner", "sentiment"] and budget["rows"][0]["models"] == 1
    html = (workspace / "report-marks" / "index.html").read_text()
    assert 'class="best"' in html and 'id="frontier"' in html and "Best under a training-time budget" in html


def test_deleted_run_makes_its_cell_missing_not_a_lower_average(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    full = _report(copy)
    victim = next(c for c in full["cells"] if c["task"] == "sentiment" and "full" in c["model"])
    shutil.rmtree(copy / "runs" / victim["run_ids"][1])
    report = _report(copy)
    cell = next(c for c in report["cells"] if c["task"] == "sentiment" and c["model"] == victim["model"])
    assert not cell["complete"] and cell["missing_seeds"] == [1]
    assert any(victim["model"] in m for m in report["missing"])
    aggregate = {a["model"]: a for a in report["aggregate"]}
    assert aggregate[victim["model"]]["mean_rank"] is None and not aggregate[victim["model"]]["complete"]


def test_report_says_which_machines_its_timings_come_from(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    here = _report(copy)["run_machines"]
    assert len(here) == 1 and "CPU not recorded" not in here[0]
    record_path = next((copy / "runs").glob("*/result.json"))
    record = json.loads(record_path.read_text())
    record["env"] |= {"cpu": "AMD EPYC (family 25, model 17)", "cpu_flags": ["avx2", "avx512f"], "cpu_cores": 2}
    record_path.write_text(json.dumps(record))
    mixed = _report(copy)
    assert len(mixed["run_machines"]) == 2 and "AMD EPYC (family 25, model 17) [avx2, avx512f], 2 cores" in \
        mixed["run_machines"]
    for name in ("README.md", "index.html"):
        assert "The timing columns mix 2 machines" in (copy / "report" / name).read_text()


def test_heads_on_cached_features_are_charged_what_the_features_cost(workspace: Path, tmp_path: Path) -> None:
    """A frozen head on cached features trains in well under a second; its training seconds must include
    computing the train features, and a run whose feature cost was never recorded has an unknown cost."""
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    records = {p: json.loads(p.read_text()) for p in (copy / "runs").glob("*/result.json")}
    frozen = {p: r for p, r in records.items() if r["task"] == "sentiment" and r["adapt"] == "frozen"}
    assert len(frozen) == 2 and all(r["timing"]["features_compute_test_s"] > 0 for r in frozen.values())
    report = _report(copy)
    cell = next(c for c in report["cells"] if c["task"] == "sentiment" and c["model"].endswith("(frozen)"))
    charged = sum(r["timing"]["train_s"] + r["timing"]["features_compute_train_s"] for r in frozen.values()) / 2
    assert cell["feature_cost"] == "charged" and cell["efficiency"]["train_s"] == pytest.approx(charged, abs=1e-3)
    assert cell["efficiency"]["train_s"] > sum(r["timing"]["train_s"] for r in frozen.values()) / 2
    assert report["feature_costs"]["charged"] == [f"sentiment / {cell['model']}"]
    full = next(c for c in report["cells"] if c["task"] == "ner" and c["model"].endswith("(full)"))
    assert full["feature_cost"] is None and full["efficiency"]["train_s"] > 0  # no cached features: as recorded
    path, record = next(iter(frozen.items()))  # as written before harness recorded the cost
    for split in ("train", "dev", "test"):
        del record["timing"][f"features_compute_{split}_s"]
    path.write_text(json.dumps(record))
    report = _report(copy)
    cell = next(c for c in report["cells"] if c["task"] == "sentiment" and c["model"].endswith("(frozen)"))
    assert cell["feature_cost"] == "unknown"
    assert cell["efficiency"]["train_s"] is None and cell["efficiency"]["eval_examples_per_s"] is None
    assert report["feature_costs"] == {"charged": [], "unknown": [f"sentiment / {cell['model']}"]}
    for name in ("README.md", "index.html"):
        assert "Cost unknown" in (copy / "report" / name).read_text()


def test_run_costs_of_records() -> None:
    from harness.report.collect import run_costs

    timing = {"train_s": 0.5, "eval_s": 0.1, "eval_examples_per_s": 1000.0, "features_compute_train_s": 20.0,
              "features_compute_dev_s": 5.0, "features_compute_test_s": 9.9}
    cached = {"timing": timing, "n_examples": 100, "execution": {"feature_cache": "hit"}}
    assert run_costs(cached) == {"train_cost_s": 20.5, "eval_cost_examples_per_s": 10.0, "feature_cost": "charged"}
    plain = {"timing": {"train_s": 3.0, "eval_examples_per_s": 50.0}, "n_examples": 10, "execution": {}}
    assert run_costs(plain) == {"train_cost_s": 3.0, "eval_cost_examples_per_s": 50.0, "feature_cost": None}
    old = cached | {"timing": {k: v for k, v in timing.items() if not k.startswith("features_compute_")}}
    assert run_costs(old) == {"train_cost_s": None, "eval_cost_examples_per_s": None, "feature_cost": "unknown"}
    of_01 = {"timing": {"train_s": 0.5, "eval_s": 0.1, "feature_cache": "hit"}, "n_examples": 100}  # harness 0.1
    assert run_costs(of_01)["feature_cost"] == "unknown"


def test_run_with_another_protocol_is_shown_apart(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    record_path = next((copy / "runs").glob("sentiment-*-s0-*/result.json"))
    record = json.loads(record_path.read_text())
    record["protocol"] = "quick"  # as if made with another recipe
    record_path.write_text(json.dumps(record))
    report = _report(copy)
    assert any("protocol quick, this leaderboard uses smoke" in e["reason"] for e in report["excluded"])
    assert any(not c["complete"] for c in report["cells"])


def test_report_of_a_runs_dir_refuses_to_mix_protocols(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    record_path = next((copy / "runs").glob("ner-*-s1-*/result.json"))
    record = json.loads(record_path.read_text()) | {"protocol": "quick"}
    record_path.write_text(json.dumps(record))
    out = run_cli("report", "--out", str(copy / "r"), runs_dir=copy / "runs")
    assert out.returncode == 2 and "several protocols" in out.stderr
    assert run_cli("report", "--protocol", "smoke", "--out", str(copy / "r"), runs_dir=copy / "runs").returncode == 0


def test_compare_adaptation_modes(workspace: Path, tiny_text_backbone: Path) -> None:
    name = tiny_text_backbone.name
    out = run_cli("compare", "--backbones", f"{name}:frozen,{name}:full", "--tasks", "sentiment,ner",
                  "--out", str(workspace / "cmp"), "--json", runs_dir=workspace / "runs")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["rows"]) == 4  # 2 tasks x 2 seeds
    for row in data["rows"]:
        assert row["low"] <= row["difference"] <= row["high"] and 0 <= row["p_value"] <= row["p_holm"] <= 1
    sentiment = [r for r in data["rows"] if r["task"] == "sentiment"]
    assert all(r["test"].startswith("McNemar") for r in sentiment)
    assert all(r["test"] == "paired bootstrap" for r in data["rows"] if r["task"] == "ner")
    summary = data["summary"][0]
    assert summary["win"] + summary["tie"] + summary["loss"] == 4
    for name_ in ("README.md", "index.html", "comparison.json", "differences.svg"):
        assert (workspace / "cmp" / name_).is_file()
    assert {f["task"] for f in data["frontiers"]} == {"sentiment", "ner"}
    assert "Score against cost" in (workspace / "cmp" / "README.md").read_text()
    table = run_cli("compare", "--backbones", f"{name}:frozen,{name}:full", "--out", str(workspace / "cmp2"),
                    runs_dir=workspace / "runs")
    assert table.returncode == 0 and "wins" in table.stdout
    assert "front sentiment / training seconds: " in table.stdout


def test_compare_a_model_with_itself_is_a_tie_with_p_one(workspace: Path, tiny_text_backbone: Path) -> None:
    from harness.report.compare import build_comparison
    from harness.store import RunStore

    name = tiny_text_backbone.name
    data = build_comparison(RunStore(workspace / "runs"), [(name, "full"), (name, "full")], ["sentiment"])
    assert all(r["difference"] == 0 and r["p_value"] == 1 and r["outcome"] == "tie" for r in data["rows"])


@pytest.mark.parametrize("args", [["compare", "--backbones", "minilm"], ["compare", "--backbones", "nope,minilm"],
                                  ["report", "--leaderboard", "no-such-board"]])
def test_bad_report_input(args: list[str], tmp_path: Path) -> None:
    out = run_cli(*args, runs_dir=tmp_path / "runs")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_run_summary_says_what_cached_features_cost() -> None:
    from harness.presentation import run_summary

    record = {"task": "t", "backbone": "b", "adapt": "frozen", "protocol": "quick", "seed": 0, "run_id": "r",
              "status": "complete", "metrics": {"accuracy": 0.5}, "primary_metric": "accuracy", "n_examples": 4,
              "modality": "text", "timing": {"train_s": 0.4, "features_compute_train_s": 20.04,
                                             "features_compute_test_s": None},
              "execution": {"feature_cache": "hit"}}
    assert "frozen features: read from the cache, computed in train 20.0s, test ?" in run_summary(record, False)
