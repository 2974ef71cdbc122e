"""Adding tasks through the real CLI: task files (by path, in ./tasks, in a leaderboard with report, compare and
explain), bad task files, name clashes, `harness new-task` + `harness validate`, `harness export`, and `topics`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import HARNESS, cli_env, run_cli

pytest.importorskip("datasets")


def one_line_error(out: subprocess.CompletedProcess, code: int = 2) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def write_reviews(folder: Path, name: str = "reviews", labels: str = '"sorted"', columns: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    words = {"pos": ["good", "great", "fine", "lovely", "superb"], "neg": ["bad", "awful", "poor", "dull", "dire"]}
    rows = ["review,stars"] + [f"a {words[s][i % 5]} thing number {i},{s}" for i in range(60)
                               for s in (("pos", "neg")[i % 2],)]
    (folder / "reviews.csv").write_text("\n".join(rows) + "\n")
    path = folder / f"{name}.toml"
    path.write_text(f'''name = "{name}"
version = "1"
kind = "text-classification"
description = "toy reviews"
license = "CC0"
labels = {labels}

[data]
format = "csv"
path = "reviews.csv"

[columns]
{columns or 'text = "review"'}
label = "stars"

[splits]
fractions = {{ train = 0.6, dev = 0.2, test = 0.2 }}
salt = "toy"

[protocols.smoke]
train_limit = 24
dev_limit = 8
test_limit = 8
''')
    return path


def test_task_file_by_path_and_in_tasks_folder(tmp_path: Path, tiny_text_backbone: Path) -> None:
    runs = tmp_path / "runs"
    path = write_reviews(tmp_path / "elsewhere")
    out = run_cli("run", "--task", str(path), "--backbone", str(tiny_text_backbone), "--protocol", "smoke", "--json",
                  "--quiet", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["task"] == "reviews" and record["status"] == "complete" and record["n_examples"] == 8
    # found by name from ./tasks (run_cli's cwd is tmp_path): the same run, reused
    shutil.copytree(tmp_path / "elsewhere", tmp_path / "tasks")
    listing = json.loads(run_cli("list", "tasks", "--json", runs_dir=runs).stdout)
    row = next(t for t in listing if t["name"] == "reviews")
    assert row["source"] == "task file in ./tasks" and row["origin"].endswith("reviews.toml")
    again = run_cli("run", "--task", "reviews", "--backbone", str(tiny_text_backbone), "--protocol", "smoke",
                    "--json", "--quiet", runs_dir=runs)
    assert json.loads(again.stdout)["run_id"] == record["run_id"]


def test_task_file_in_a_leaderboard_with_report_compare_and_explain(tmp_path: Path, tiny_text_backbone: Path) -> None:
    runs = tmp_path / "runs"
    write_reviews(tmp_path / "tasks")
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "toy.toml").write_text(f'''name = "toy"
description = "a task file on a leaderboard"
protocol = "smoke"
seeds = [0, 1]
tasks = ["reviews"]
models = [{{ backbone = "{tiny_text_backbone}", adapt = "full", tasks = ["reviews"] }},
          {{ backbone = "{tiny_text_backbone}", adapt = "frozen", tasks = ["reviews"] }}]
''')
    env = {"HARNESS_LEADERBOARDS": str(boards)}
    out = run_cli("run", "--leaderboard", "toy", "--explain", "--quiet", runs_dir=runs, **env)
    assert out.returncode == 0, out.stderr
    assert "4 run now" in out.stdout
    report = run_cli("report", "--leaderboard", "toy", "--out", str(tmp_path / "report"), "--json", runs_dir=runs,
                     **env)
    assert report.returncode == 0, report.stderr
    cells = json.loads((tmp_path / "report" / "leaderboard.json").read_text())["cells"]
    assert len(cells) == 2 and all(c["estimate"] is not None for c in cells)
    name = tiny_text_backbone.name
    compared = run_cli("compare", "--backbones", f"{name}:full,{name}:frozen",
                       "--out", str(tmp_path / "cmp"), "--json", runs_dir=runs)
    assert compared.returncode == 0, compared.stderr
    assert name in compared.stdout
    exported = run_cli("export", "--leaderboard", "toy", "--format", "model-index", runs_dir=runs, **env)
    assert exported.returncode == 0, exported.stderr
    entries = yaml.safe_load(exported.stdout)["model-index"]
    assert len(entries) == 2
    metric = entries[0]["results"][0]["metrics"][0]
    assert metric["type"] == "accuracy" and metric["args"]["seeds"] == [0, 1]
    assert len(metric["args"]["interval_95"]) == 2
    assert entries[0]["results"][0]["task"]["type"] == "text-classification"


@pytest.mark.parametrize(("change", "expected"), [
    ({"labels": '["pos", "meh"]'}, "label 'neg' is in the data but not in labels"),
    ({"columns": 'text = "body"'}, "column 'body' (text) is not in the data"),
])
def test_bad_task_file_data_is_one_line_and_no_run_folder(tmp_path: Path, change: dict, expected: str) -> None:
    path = write_reviews(tmp_path / "t", **change)
    runs = tmp_path / "runs"
    line = one_line_error(run_cli("run", "--task", str(path), "--protocol", "smoke", runs_dir=runs))
    assert expected in line
    assert not runs.exists() or not any(p for p in runs.iterdir() if p.is_dir())


def test_bad_task_file_syntax_kind_and_empty_split(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "t")
    text = path.read_text()
    path.write_text(text.replace('kind = "text-classification"', 'kind = "text-regression"'))
    line = one_line_error(run_cli("run", "--task", str(path), runs_dir=tmp_path / "r"))
    assert "unknown kind 'text-regression'" in line
    path.write_text(text.replace("train = 0.6, dev = 0.2, test = 0.2", "train = 0.98, dev = 0.01, test = 0.01"))
    assert "split is empty" in one_line_error(run_cli("run", "--task", str(path), runs_dir=tmp_path / "r"))
    path.write_text("name = ")  # (a path that does not exist: test_taskfiles, in process)
    assert "not valid TOML" in one_line_error(run_cli("run", "--task", str(path), runs_dir=tmp_path / "r"))


def test_a_task_file_clashing_with_a_builtin_is_named_everywhere_it_is_used(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "tasks", name="ner")
    listing = run_cli("list", "tasks", runs_dir=tmp_path / "runs")
    assert listing.returncode == 0 and "sentiment" in listing.stdout
    assert "duplicate task 'ner'" in listing.stdout
    line = one_line_error(run_cli("run", "--task", "ner", runs_dir=tmp_path / "runs"))
    assert "harness_tasks.ner:NerTask" in line and str(path) in line


def test_label_missing_from_label_names_is_named_before_training(tmp_path: Path) -> None:
    """A Python task whose data holds a label it does not list: one line naming the label, no KeyError later."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "mislabelled.py").write_text('''
from harness.protocol import TrainingProtocol, protocol_table
from harness.task import Example, TaskSpec, register_task
from harness.text_tasks import SequenceClassificationTask

@register_task
class Mislabelled(SequenceClassificationTask):
    spec = TaskSpec(name="mislabelled", default_backbone="minilm", version="1", description="d", license="l",
                    data_sources=("inline",))
    label_names = ("business", "politics")
    protocols = protocol_table(smoke=TrainingProtocol(epochs=1), quick=TrainingProtocol(epochs=1),
                               standard=TrainingProtocol(epochs=1))
    def data_fingerprint(self): return "sha256:" + "0" * 64
    def read_splits(self):
        rows = [Example(f"e{i}", f"text {i}", ("business", "sports")[i % 2]) for i in range(6)]
        return {"train": rows[:2], "dev": rows[2:4], "test": rows[4:]}
''')
    dist = plugin / "mislabelled-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mislabelled\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harness.tasks]\nmislabelled = mislabelled:Mislabelled\n")
    out = run_cli("run", "--task", "mislabelled", "--protocol", "smoke", runs_dir=tmp_path / "runs",
                  PYTHONPATH=str(plugin))
    line = one_line_error(out)
    assert "label 'sports' of example 'e1' (train split) is not in label_names ['business', 'politics']" in line


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`harness new-task` for a text task, installed with pip (a real build) into its own folder."""
    parent = tmp_path_factory.mktemp("scaffold")
    out = subprocess.run([*HARNESS, "new-task", "my-reviews", "--kind", "text-classification", "--dir", str(parent)],
                         capture_output=True, text=True, env=cli_env(parent / "runs"), timeout=120)
    assert out.returncode == 0, out.stderr
    folder = parent / "harness-task-my-reviews"
    site = tmp_path_factory.mktemp("scaffold-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(folder)], check=True, capture_output=True)
    return folder, site


def test_new_task_passes_validate_and_runs_through_the_cli(scaffolded: tuple[Path, Path], tmp_path: Path) -> None:
    folder, site = scaffolded
    assert {p.name for p in folder.iterdir()} >= {"pyproject.toml", "README.md", "tests", "harness_task_my_reviews"}
    env = {"PYTHONPATH": str(site)}
    checked = run_cli("validate", "my-reviews", "--json", runs_dir=tmp_path / "runs", **env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    results = {r["check"]: r["result"] for r in json.loads(checked.stdout)}
    assert results == {"spec": "pass", "splits": "pass", "stable": "pass", "labels": "pass", "smoke run": "pass",
                       "repeat": "pass", "explain": "pass"}
    assert not (tmp_path / "runs").exists()  # validate's runs never touch the user's runs directory
    run = run_cli("run", "--task", "my-reviews", "--protocol", "smoke", "--json", "--quiet", runs_dir=tmp_path / "runs",
                  **env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == "complete"
    # the scaffold's own test runs the same checks (validate above): here it must at least compile
    test_file = folder / "tests" / "test_harness_task_my_reviews.py"
    compile(test_file.read_text(), str(test_file), "exec")


@pytest.mark.parametrize("kind", ["token-classification", "image-classification", "audio-classification"])
def test_new_task_of_every_kind_passes_the_data_checks(kind: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.scaffold import scaffold
    from harness.task import TASKS
    from harness.validation import validate

    name = f"scaffolded-{kind.split('-')[0]}"
    folder = scaffold(name, kind, tmp_path)
    package = "harness_task_" + name.replace("-", "_")
    monkeypatch.syspath_prepend(str(folder))
    TASKS.add_lazy(name, f"{package}.task:{''.join(p.capitalize() for p in name.split('-'))}Task",
                   "entry point of a test")  # what its pyproject's entry point declares
    results = validate(name, runs=False)
    assert [(r.name, r.passed) for r in results] == [("spec", True), ("splits", True), ("stable", True),
                                                     ("labels", True)], results


def test_new_task_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    assert "must be lower-case" in one_line_error(run_cli("new-task", "My_Task", "--kind", "text-classification",
                                                          "--dir", str(tmp_path), runs_dir=tmp_path / "r"))
    (tmp_path / "harness-task-x").mkdir()
    assert "already exists" in one_line_error(run_cli("new-task", "x", "--kind", "text-classification",
                                                      "--dir", str(tmp_path), runs_dir=tmp_path / "r"))


def test_validate_reports_a_failing_check_with_exit_1(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "t")
    path.write_text(path.read_text().replace('[protocols.smoke]', '[protocols.smoke]\nepochs = 1'))
    (tmp_path / "t" / "reviews.csv").write_text("review,stars\n" + "".join(f"same text,{'pos' if i % 2 else 'neg'}\n"
                                                                        for i in range(20)))
    out = run_cli("validate", str(path), "--no-runs", runs_dir=tmp_path / "runs")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "[FAIL] splits" in out.stdout and "split is empty" in out.stdout
    assert "unknown task" in one_line_error(run_cli("validate", "no-such-task", runs_dir=tmp_path / "runs"))


def test_topics_runs_from_its_task_file(tmp_path: Path) -> None:
    out = run_cli("run", "--task", "topics", "--protocol", "smoke", "--json", "--quiet", runs_dir=tmp_path / "runs")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["task"] == "topics" and record["status"] == "complete" and record["n_examples"] == 64
    assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and "macro_f1" in record["metrics"]


def test_export_csv_parquet_and_a_run_model_index(tmp_path: Path, tiny_text_backbone: Path) -> None:
    runs = tmp_path / "runs"
    path = write_reviews(tmp_path / "t")
    record = json.loads(run_cli("run", "--task", str(path), "--backbone", str(tiny_text_backbone), "--protocol",
                                "smoke", "--json", "--quiet", runs_dir=runs).stdout)
    lost = run_cli("export", record["run_id"], "--format", "model-index", runs_dir=runs)
    assert "unknown task 'reviews'" in one_line_error(lost)  # a task given by path must be findable again
    card = yaml.safe_load(run_cli("export", record["run_id"], "--format", "model-index", runs_dir=runs,
                                  HARNESS_TASK_PATH=str(path)).stdout)
    metrics = {m["type"]: m["value"] for m in card["model-index"][0]["results"][0]["metrics"]}
    assert metrics["accuracy"] == pytest.approx(record["metrics"]["accuracy"], abs=1e-6)
    csv = run_cli("export", "--format", "csv", runs_dir=runs)
    assert csv.returncode == 0 and record["run_id"] in csv.stdout and "metric:macro_f1" in csv.stdout.splitlines()[0]
    out = tmp_path / "runs.parquet"
    assert run_cli("export", "--format", "parquet", "--out", str(out), runs_dir=runs).returncode == 0
    import pandas as pd

    frame = pd.read_parquet(out)
    assert list(frame["run_id"]) == [record["run_id"]]
    assert "give --out" in one_line_error(run_cli("export", "--format", "parquet", runs_dir=runs))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".runs.parquet")] == []  # no staged file left
