"""benchmarks/run.py: alternation, statistics, reports, the machine description, and one real pair of
contenders end to end (`harness --help` against `harness list tasks`, each in a fresh process)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS_DIR))  # benchmarks/ is a folder of scripts, not a package: on the path
try:  # only while importing, so its script names (run, worker, ...) shadow nothing in other tests
    import board
    import run
    from suite import core, machine, report
    from suite.context import RunContext
    from suite.definitions import BENCHMARKS
    from suite.labels import IGNORE, first_subword_labels, word_tags
finally:
    sys.path.remove(str(BENCHMARKS_DIR))

MACHINE = {"cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 2, "usable_cores": 2, "ram_gib": 7.8, "gpus": [],
           "cpu_flags": ["avx2"], "hostname": "h", "platform": "Linux", "python": "3.11.7",
           "packages": {"torch": "2.11.0", "transformers": "5.24.0", "timm": "1.0.31", "accelerate": "1.15.0"},
           "load_average": [0.1, 0.2, 0.3], "harness_commit": "0123456789abcdef", "date": "2026-01-01T00:00:00+00:00"}


def fake_bench(*names: str, reference: str = "a") -> core.Benchmark:
    return core.Benchmark(name="fake", title="a test", timed="seconds", reference=reference, scores=("acc",),
                          contenders=tuple(core.Contender(n, "suite.none:nothing", note=f"contender {n}")
                                           for n in names))


def row(contender: str, round_: int, seconds: float | None, acc: float = 0.5, error: str | None = None) -> dict:
    return {"round": round_, "seed": round_, "contender": contender, "seconds": seconds, "wall_s": (seconds or 0) + 1,
            "scores": {} if error else {"acc": acc}, "extra": {}, "error": error}


def test_schedule_alternates_contenders_within_every_round():
    bench = fake_bench("a", "b", "c")
    order = [(r, c.name) for r, c in core.schedule(bench.contenders, 3)]
    assert order == [(r, n) for r in range(3) for n in ("a", "b", "c")]


def test_summary_medians_ratios_and_mean_scores():
    runs = [row("a", 0, 10.0, 0.4), row("b", 0, 4.0, 0.6), row("a", 1, 12.0, 0.6), row("b", 1, 6.0, 0.8),
            row("a", 2, 11.0, 0.5), row("b", 2, None, error="exit 1: boom")]
    summary = core.summarise(runs, ["a", "b"], "a")
    assert summary["a"] | {"scores": None} == {
        "runs": 3, "failed": 0, "median_s": 11.0, "min_s": 10.0, "max_s": 12.0, "wall_median_s": 12.0,
        "seeds": [0, 1, 2], "scores": None, "ratio": 1.0}
    assert summary["a"]["scores"]["acc"] == pytest.approx(0.5)
    b = summary["b"]
    assert (b["runs"], b["failed"], b["median_s"], b["min_s"], b["max_s"]) == (2, 1, 5.0, 4.0, 6.0)
    assert b["ratio"] == pytest.approx(5.0 / 11.0)
    assert b["scores"]["acc"] == pytest.approx(0.7)  # failed runs count in no mean


def test_no_ratio_without_a_reference_measurement():
    summary = core.summarise([row("a", 0, None, error="x"), row("b", 0, 3.0)], ["a", "b"], "a")
    assert summary["a"]["median_s"] is None and summary["b"]["ratio"] is None


def test_report_files_hold_the_table_the_runs_and_the_machine(tmp_path):
    runs = [row("a", 0, 10.0), row("b", 0, 5.0), row("a", 1, 12.0), row("b", 1, None, error="exit 1: boom")]
    result = core.assemble(fake_bench("a", "b"), 2, False, {"env": {"X": "1"}, "store_s": 3.0}, runs)
    markdown, data = report.write_result(result, MACHINE, "python benchmarks/run.py --only fake", tmp_path)
    assert markdown.name == "fake-amd-epyc-7b13-2c.md" and data.name == "fake-amd-epyc-7b13-2c.json"
    text = markdown.read_text()
    assert "| a | 11.000 | 10.000 | 12.000 | 1.00 | 0.5000 |" in text
    assert "| b | 5.000 | 5.000 | 5.000 | 0.45 |" in text and "1 (1 failed)" in text
    assert "AMD EPYC 7B13 64-Core Processor [avx2], 2 of 2 cores usable" in text and "harness 0123456789ab" in text
    assert "round 2 `b`: exit 1: boom" in text
    document = json.loads(data.read_text())
    assert document["machine"]["packages"]["transformers"] == "5.24.0"
    assert document["setup"] == {"store_s": 3.0}  # the environment given to contenders is not part of it
    assert [r["contender"] for r in document["runs"]] == ["a", "b", "a", "b"]
    tiny = core.assemble(fake_bench("a", "b"), 1, True, {}, runs[:2])
    assert report.write_result(tiny, MACHINE, "cmd", tmp_path)[0].name == "fake-amd-epyc-7b13-2c-tiny.md"


def test_machine_reads_cpuinfo_and_names_files(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t: fpu avx2 amx_tile\n")
    assert machine.cpu_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert machine.cpu_flags(cpuinfo) == ["avx2", "amx_tile"]
    assert machine.slug({"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "usable_cores": 4, "gpus": []}) == "intel-xeon-4c"
    assert machine.slug({"cpu": "x", "usable_cores": 16, "gpus": ["NVIDIA H200"]}) == "nvidia-h200-16c"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16777216 kB\n")
    assert machine.ram_gib(meminfo) == 16.0


def test_contender_environment_is_offline_with_its_own_runs_dir(tmp_path):
    env = core.contender_env(tmp_path, {"HARNESS_LEADERBOARDS": "/boards"})
    assert env["HF_HUB_OFFLINE"] == "1" and env["HARNESS_RUNS_DIR"] == str(tmp_path / "runs")
    assert env["HARNESS_LEADERBOARDS"] == "/boards"
    assert core.contender_env(tmp_path, {"HARNESS_RUNS_DIR": "/store"})["HARNESS_RUNS_DIR"] == "/store"


def test_only_selects_in_suite_order_and_refuses_unknown_names():
    assert [b.name for b in run.select("startup,ner")] == ["ner", "startup"]
    assert [b.name for b in run.select(None)] == list(BENCHMARKS)
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run.select("ner,nope")
    args = run.parse_args(["--tiny"])
    assert run.rounds_for(BENCHMARKS["startup"], args) == 2
    assert run.rounds_for(BENCHMARKS["startup"], run.parse_args([])) == 5
    assert run.rounds_for(BENCHMARKS["ner"], run.parse_args(["--rounds", "3"])) == 3


def test_every_benchmark_names_its_reference_and_real_targets():
    assert set(BENCHMARKS) == {"ner", "sentiment", "fashion-mnist", "feature-cache", "startup"}
    for bench in BENCHMARKS.values():
        names = [c.name for c in bench.contenders]
        assert bench.reference in names and len(set(names)) == len(names)
        for target in [c.target for c in bench.contenders] + [bench.setup or "suite.core:schedule"]:
            module, _, function = target.partition(":")
            source = (BENCHMARKS_DIR / Path(*module.split("."))).with_suffix(".py").read_text()
            defined = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
            assert function in defined, target


def test_first_subword_labelling_and_word_tags():
    word_ids = [None, 0, 0, 1, 2, 2, None]  # [CLS] w0 w0' w1 w2 w2' [SEP]; word 3 cut off by max_length
    assert first_subword_labels(word_ids, [1, 2, 3, 4]) == [IGNORE, 1, IGNORE, 2, 3, IGNORE, IGNORE]
    predicted = [0, 1, 0, 2, 1, 2, 0]
    assert word_tags(predicted, word_ids, 4, ["O", "B-x", "I-x"]) == ["B-x", "I-x", "B-x", "O"]


def test_a_failing_worker_is_an_error_line_not_an_exception(tmp_path):
    context = RunContext("fake", "broken", 0, True, tmp_path / "w")
    result, wall, error = core.in_fresh_process("suite.context:no_such_function", context,
                                                core.contender_env(tmp_path), timeout=60)
    assert result is None and wall > 0 and error.startswith("exit 1:") and "no_such_function" in error


def test_a_real_pair_alternates_in_fresh_processes(tmp_path):
    startup = BENCHMARKS["startup"]
    bench = core.Benchmark(name="pair", title="help vs list", timed="wall seconds", reference="help",
                           contenders=(startup.contender("help"), startup.contender("list-tasks")))
    lines: list[str] = []
    result = core.run_benchmark(bench, rounds=2, tiny=True, echo=lines.append, timeout=120)
    assert [(r["round"], r["seed"], r["contender"]) for r in result["runs"]] == [
        (0, 0, "help"), (0, 0, "list-tasks"), (1, 1, "help"), (1, 1, "list-tasks")]
    assert all(r["error"] is None and r["seconds"] > 0 for r in result["runs"]), lines
    assert result["runs"][0]["extra"]["argv"] == ["--help"]
    assert result["summary"]["help"]["ratio"] == 1.0 and result["summary"]["list-tasks"]["ratio"] > 0
    assert len(lines) == 5 and lines[2].startswith("[pair] round 1/2 seed 0 list-tasks")
    markdown, _ = report.write_result(result, machine.describe_machine(), "test", tmp_path)
    assert "| list-tasks |" in markdown.read_text()


def _board_record(runs: Path, seed: int, primary: float, total_s: float, start: str, **changes) -> None:
    record = {"schema_version": 1, "run_id": f"ner-s{seed}-{len(list(runs.iterdir()))}", "status": "complete",
              "task": "ner", "backbone": "minilm", "adapt": "full", "protocol": "quick", "seed": seed,
              "task_version": "1", "config": {}, "config_hash": "0" * 64, "primary_metric": "entity_f1",
              "metrics": {"entity_f1": primary}, "primary": primary, "n_examples": 10,
              "timing": {"total_s": total_s}, "env": {}, "created_at": start} | changes
    folder = runs / record["run_id"]
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps(record))


def test_board_summary_sets_the_boards_finished_test_runs_beside_the_reference(tmp_path: Path) -> None:
    new, old = tmp_path / "new" / "runs", tmp_path / "old"
    new.mkdir(parents=True)
    old.mkdir()
    _board_record(new, 0, 0.40, 100.0, "2026-01-01T00:00:00+00:00")
    _board_record(new, 1, 0.50, 300.0, "2026-01-01T00:01:00+00:00")  # ends 360 s after the first start
    _board_record(new, 2, 0.99, 10.0, "2026-01-01T00:00:00+00:00", status="running")  # not finished
    _board_record(new, 2, 0.99, 10.0, "2026-01-01T00:00:00+00:00", role="trial")  # a tuning trial
    _board_record(new, 2, 0.99, 10.0, "2026-01-01T00:00:00+00:00", protocol="smoke")  # another protocol
    _board_record(new, 2, 0.99, 10.0, "2026-01-01T00:00:00+00:00", backbone="mpnet")  # not one of its models
    _board_record(new, 2, 0.99, 10.0, "2026-01-01T00:00:00+00:00", task="fashion-mnist")  # minilm does not fit it
    (new / "damaged").mkdir()
    (new / "damaged" / "result.json").write_text("{not json")  # left out, as every store reader does
    _board_record(old, 0, 0.30, 500.0, "2025-01-01T00:00:00+00:00")
    result = board.summarise("cpu-default", new, old, wall=400.04)
    assert (result["runs"], result["run_s"], result["span_s"], result["wall_s"]) == (2, 400.0, 360.0, 400.0)
    row = result["models"]["ner / minilm (full)"]
    assert row["seeds"] == [0, 1] and row["mean"] == pytest.approx(0.45) and (row["min"], row["max"]) == (0.4, 0.5)
    assert result["reference"]["models"]["ner / minilm (full)"]["run_s"] == 500.0
    text = board.to_markdown(result | {"command": "harness run --leaderboard cpu-default", "reference_label": "before"},
                             "a machine")
    assert "| ner / minilm (full) | 0,1 | 0.45 (0.4 to 0.5) | 400 | 0.3 (0.3 to 0.3) | 500 |" in text
    assert "wall time of the command: **6.7 min**" in text and "before: 1 runs, 8.3 min" in text


def test_board_refuses_a_store_that_is_not_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs" / "old-run").mkdir(parents=True)
    assert board.main(["--leaderboard", "cpu-default", "--store", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
