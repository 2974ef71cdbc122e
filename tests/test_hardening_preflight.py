"""Hardening (issue 15): faults found before a run starts.

1. One broken plugin (a SyntaxError, a protocol's ValueError, a TypeError, a failed check) never hides the
   others: `list` shows it with its reason; using it is one error line naming it (exit 2).
2. An unreachable hub fails in seconds, in one line, before any run directory exists (it was a minute of
   "Retrying in N s" and a failed record).
3. Bad input (a backbone folder that is no model, an unreadable CIFAR archive, clips that are not WAV) is one
   error line (exit 2) before the run is claimed: no `failed` record for what never was a run.
"""

from __future__ import annotations

import json
import socket
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import run_cli
from datagen import write_cifar_archive, write_speech_commands, write_tone
from harness import api
from harness.assets import HUB_PROBE_TIMEOUT_S, url_unreachable
from harness.preflight import wav_problem
from harness.registry import BrokenEntryError, Registry

# --- 1. broken plugins ------------------------------------------------------------------------------

PLUGINS = {
    "broken_syntax.py": "def oops(:\n",
    "broken_type.py": "raise TypeError('plugin expects another harness')\n",
    "broken_protocol.py": (
        "from typing import ClassVar\n"
        "from harness.protocol import TrainingProtocol, protocol_table\n"
        "from harness.task import TaskSpec, register_task\n"
        "from harness.text_tasks import SequenceClassificationTask\n\n"
        "@register_task\n"
        "class Task(SequenceClassificationTask):\n"
        "    spec: ClassVar[TaskSpec] = TaskSpec(name='broken-protocol', default_backbone='minilm', version='1')\n"
        "    protocols = protocol_table(smoke=TrainingProtocol(epochs=1, layer_mix='bogus'),\n"
        "                               quick=TrainingProtocol(epochs=1), standard=TrainingProtocol(epochs=1))\n"),
    "broken_spec.py": "class Task:\n    spec = 'not a TaskSpec'\n",
    "broken_backbone.py": "import no_such_module_for_harness_tests\n",
}
ENTRY_POINTS = ("[harness.tasks]\nbroken-syntax = broken_syntax:Task\nbroken-type = broken_type:Task\n"
                "broken-protocol = broken_protocol:Task\nbroken-spec = broken_spec:Task\n"
                "[harness.backbones]\nbroken-backbone = broken_backbone:spec\n")
BROKEN_TASKS = {"broken-syntax": "SyntaxError", "broken-type": "TypeError: plugin expects another harness",
                "broken-protocol": "ValueError: layer_mix must be", "broken-spec": "has no `spec: TaskSpec`"}


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder on PYTHONPATH with one installed distribution whose plugins are all broken."""
    site = tmp_path_factory.mktemp("broken-site")
    dist_info = site / "broken_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    for name, code in PLUGINS.items():
        (site / name).write_text(code)
    return site


def _one_error_line(out: Any) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("harness: error: ")
    return lines[0]


def _no_run_directories(runs: Path) -> None:
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()], list(runs.iterdir())


def test_list_shows_healthy_and_broken_plugins(plugin_site: Path, tmp_path: Path) -> None:
    out = run_cli("list", "--json", runs_dir=tmp_path / "runs", PYTHONPATH=str(plugin_site))
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    tasks = {row["name"]: row for row in listing["tasks"]}
    assert {"ner", "sentiment", "cifar10"} <= set(tasks) and tasks["ner"]["problem"] is None
    for name, reason in BROKEN_TASKS.items():
        assert reason in tasks[name]["problem"], tasks[name]
        assert tasks[name]["source"] == "entry point of broken-plugins" and tasks[name]["origin"]
    backbones = {row["name"]: row for row in listing["backbones"]}
    assert "ModuleNotFoundError" in backbones["broken-backbone"]["problem"]
    assert backbones["minilm"]["problem"] is None
    text = run_cli("list", "tasks", runs_dir=tmp_path / "runs", PYTHONPATH=str(plugin_site))
    assert text.returncode == 0 and "problem" in text.stdout and "broken_type:Task" in text.stdout


@pytest.mark.parametrize("args, named", [
    *[(("run", "--task", name, "--protocol", "smoke"), f"task '{name}'") for name in BROKEN_TASKS],
    (("run", "--task", "sentiment", "--backbone", "broken-backbone", "--protocol", "smoke"),
     "backbone 'broken-backbone'"),
])
def test_using_a_broken_plugin_is_one_line_naming_it(plugin_site: Path, tmp_path: Path, args: tuple[str, ...],
                                                     named: str) -> None:
    out = run_cli(*args, runs_dir=tmp_path / "runs", PYTHONPATH=str(plugin_site))
    assert out.returncode == 2, out.stderr
    line = _one_error_line(out)
    assert named in line and "entry point of broken-plugins" in line and "Traceback" not in out.stderr
    _no_run_directories(tmp_path / "runs")


def test_leaderboard_naming_a_broken_task_is_refused(plugin_site: Path, tmp_path: Path) -> None:
    board = tmp_path / "board.toml"
    board.write_text('name = "b"\nprotocol = "smoke"\nseeds = [0]\ntasks = ["broken-protocol"]\n'
                     'models = [{ backbone = "minilm", adapt = "full" }]\n')
    out = run_cli("run", "--leaderboard", str(board), runs_dir=tmp_path / "runs", PYTHONPATH=str(plugin_site))
    assert out.returncode == 2
    assert "task 'broken-protocol'" in _one_error_line(out) and "ValueError" in out.stderr


def test_registry_isolates_broken_entries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "reg_bad_value.py").write_text("raise ValueError('bad field')\n")
    (tmp_path / "reg_good.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[object] = Registry("thing", "harness.test-none")
    registry.add_lazy("bad", "reg_bad_value:VALUE", "entry point of fake")
    registry.add_lazy("good", "reg_good:VALUE", "entry point of fake")
    assert dict(registry.items()) == {"good": 7}
    assert registry.problems() == {"bad": "ValueError: bad field"}
    for _ in range(2):  # tried once, refused the same way after
        with pytest.raises(BrokenEntryError, match="thing 'bad' could not be loaded from reg_bad_value:VALUE"):
            registry.get("bad")


# --- 2. an unreachable hub ----------------------------------------------------------------------------

@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("server", ["closed", "silent"])
@pytest.mark.parametrize("task, backbone", [("cifar10", "resnet18"), ("sentiment", "someorg/no-such-model")])
def test_unreachable_hub_fails_fast_in_one_line(request: pytest.FixtureRequest, tmp_path: Path, server: str,
                                                task: str, backbone: str) -> None:
    port = request.getfixturevalue(f"{server}_port")
    runs = tmp_path / "runs"
    out = run_cli("run", "--task", task, "--backbone", backbone, "--protocol", "smoke", runs_dir=runs,
                  timeout=120, HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{port}",
                  HF_HOME=str(tmp_path / "hf-home"))
    assert out.returncode == 2, out.stderr
    line = _one_error_line(out)
    # one probe, no retries (they took over 45 s); no wall-clock bound: it flakes on a loaded machine, and the
    # 120 s timeout above catches a hang
    assert f"127.0.0.1:{port} is not reachable" in line and "Retrying" not in out.stderr
    _no_run_directories(runs)


@pytest.mark.parametrize("server", ["closed", "silent"])
def test_hub_probe_is_one_short_request(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                                        server: str) -> None:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: whether this worker imported it under the tests'
    # offline setting depends on which test files were collected, so the probe is asked as on a network
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    port = request.getfixturevalue(f"{server}_port")
    started = time.perf_counter()
    problem = url_unreachable(f"http://127.0.0.1:{port}/timm/resnet18.a1_in1k/resolve/main/model.safetensors")
    elapsed = time.perf_counter() - started
    assert problem is not None and "not reachable" in problem and "\n" not in problem
    assert elapsed < (1.5 if server == "closed" else HUB_PROBE_TIMEOUT_S + 1.5), elapsed


# --- 3. bad input, found before the run is claimed -------------------------------------------------------

def _garbage_config(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text("{ not json")


def _unknown_model_type(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')


def _no_timm_architecture(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text('{"num_classes": 10}')


def _random_archive(data: Path) -> None:
    data.mkdir()
    (data / "cifar-10-python.tar.gz").write_bytes(bytes(range(256)) * 40)


def _truncated_archive(data: Path) -> None:
    data.mkdir()
    write_cifar_archive(data / "cifar-10-python.tar.gz")
    whole = (data / "cifar-10-python.tar.gz").read_bytes()
    (data / "cifar-10-python.tar.gz").write_bytes(whole[: len(whole) // 2])


def _not_wav_clip(data: Path) -> None:
    write_speech_commands(data)
    (data / "go" / "spk01_nohash_0.wav").write_bytes(b"ID3\x03\x00 this is an mp3, not a wav" * 20)


def _truncated_wav_clip(data: Path) -> None:
    write_speech_commands(data)
    clip = data / "stop" / "spk02_nohash_0.wav"
    clip.write_bytes(clip.read_bytes()[:2000])


# (what is written, the command's arguments with DIR for it, what the one line must say)
BAD_INPUTS = {
    "text folder, config.json not JSON": (_garbage_config, ["--task", "sentiment", "--backbone", "DIR"],
                                          "config.json is not readable JSON"),
    "text folder, unknown model type": (_unknown_model_type, ["--task", "sentiment", "--backbone", "DIR"],
                                        "no model type transformers knows"),
    "cifar archive of random bytes": (_random_archive, ["--task", "cifar10", "--data-dir", "DIR"],
                                      "not a readable .tar.gz archive"),
    "cifar archive cut in half": (_truncated_archive, ["--task", "cifar10", "--data-dir", "DIR"],
                                  "not a readable .tar.gz archive"),
    "speech clip that is not WAV": (_not_wav_clip, ["--task", "speech-commands", "--data-dir", "DIR"],
                                    "spk01_nohash_0.wav: not a 16-bit PCM WAV file"),
    "speech clip cut short": (_truncated_wav_clip, ["--task", "speech-commands", "--data-dir", "DIR"],
                              "spk02_nohash_0.wav: truncated"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path: Path, case: str) -> None:
    write, args, expected = BAD_INPUTS[case]
    target = tmp_path / "input"
    write(target)
    runs = tmp_path / "runs"
    out = run_cli("run", *[str(target) if a == "DIR" else a for a in args], "--protocol", "smoke", runs_dir=runs)
    assert out.returncode == 2, out.stderr
    assert expected in _one_error_line(out)
    _no_run_directories(runs)


def test_image_folder_without_architecture_is_refused_before_the_run(tmp_path: Path) -> None:
    data, folder = tmp_path / "cifar", tmp_path / "not-timm"
    data.mkdir()
    write_cifar_archive(data / "cifar-10-python.tar.gz")
    _no_timm_architecture(folder)
    out = run_cli("run", "--task", "cifar10", "--data-dir", str(data), "--backbone", str(folder), "--protocol",
                  "smoke", runs_dir=tmp_path / "runs")
    assert out.returncode == 2, out.stderr
    assert "names no timm 'architecture'" in _one_error_line(out)
    _no_run_directories(tmp_path / "runs")


def test_leaderboard_cell_failing_preflight_is_failed_without_a_record(tmp_path: Path) -> None:
    folder = tmp_path / "bad-model"
    _unknown_model_type(folder)
    board = tmp_path / "board.toml"
    board.write_text(f'name = "pre"\nprotocol = "smoke"\nseeds = [0]\ntasks = ["sentiment"]\n'
                     f'models = [{{ backbone = "{folder}", adapt = "frozen", tasks = ["sentiment"] }}]\n')
    runs = tmp_path / "runs"
    out = run_cli("run", "--leaderboard", str(board), "--json", runs_dir=runs)
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout)
    assert summary["failed"] and "no model type transformers knows" in summary["failed"][0][3]
    _no_run_directories(runs)


def test_stored_complete_runs_skip_preflight(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[Any] = []
    monkeypatch.setattr(api, "check_plans", lambda plans: checked.extend(plans))
    stored, fresh = SimpleNamespace(run_id="a", config_hash="1"), SimpleNamespace(run_id="b", config_hash="2")
    store = SimpleNamespace(find_complete=lambda run_id, digest: {"run_id": "a"} if run_id == "a" else None)
    api._preflight([stored, fresh], store, force=False)  # type: ignore[arg-type]
    assert checked == [fresh]
    checked.clear()
    api._preflight([stored, fresh], store, force=True)  # type: ignore[arg-type]
    assert checked == [stored, fresh]


def test_wav_header_check(tmp_path: Path) -> None:
    good, eight_bit, junk = tmp_path / "good.wav", tmp_path / "8bit.wav", tmp_path / "junk.wav"
    write_tone(good, 440)
    write_tone(eight_bit, 440, width=1)
    junk.write_bytes(b"RIFF\x00\x00")
    assert wav_problem(good) is None
    assert "8-bit" in (wav_problem(eight_bit) or "")
    assert "not a 16-bit PCM WAV file" in (wav_problem(junk) or "")
    assert "not found" in (wav_problem(tmp_path / "missing.wav") or "")
    with wave.open(str(good)) as wf:
        assert wf.getnframes() == 16000  # the header the check reads is the one read_wav reads
