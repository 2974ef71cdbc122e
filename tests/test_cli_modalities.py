"""Vision and speech end to end through the real CLI (smoke protocol), on packaged and written data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli
from datagen import write_cifar_archive, write_speech_commands

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _record(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def test_fashion_mnist_smoke_on_the_debian_package(runs: Path) -> None:
    if not DEBIAN_FASHION_MNIST.is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must install the Debian package dataset-fashion-mnist (.ci/run does)")
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    record = _record(run_cli("run", "--task", "fashion-mnist", "--protocol", "smoke", "--json", "--quiet",
                             runs_dir=runs))
    assert record["backbone"] == "efficientnet-lite0" and record["backbone_source"].startswith("package")
    assert set(record["metrics"]) == {"top1", "macro_f1", "ece"} and record["n_examples"] == 64


def test_keywords_smoke_frozen_reuses_features_for_a_second_seed(runs: Path) -> None:
    first = _record(run_cli("run", "--task", "keywords", "--protocol", "smoke", "--json", "--quiet", runs_dir=runs))
    assert first["adapt"] == "frozen" and first["backbone"] == "whisper-tiny-en"
    assert first["config"]["data"].startswith("sha256:")
    second = _record(run_cli("run", "--task", "keywords", "--protocol", "smoke", "--seed", "1", "--json", "--quiet",
                             runs_dir=runs))
    assert second["execution"]["feature_cache"] == "hit"
    assert second["config"]["data"] == first["config"]["data"]
    # the first seed again, now from the cache: the same numbers as when its features were computed
    again = _record(run_cli("run", "--task", "keywords", "--protocol", "smoke", "--force", "--json", "--quiet",
                            runs_dir=runs))
    assert first["execution"]["feature_cache"] == "miss" and again["execution"]["feature_cache"] == "hit"
    assert again["metrics"] == first["metrics"] and again["dev_history"] == first["dev_history"]


def test_cifar10_from_a_written_archive(runs: Path, tmp_path: Path) -> None:
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    record = _record(run_cli("run", "--task", "cifar10", "--protocol", "smoke", "--data-dir", str(tmp_path),
                             "--adapt", "frozen", "--json", "--quiet", runs_dir=runs))
    assert record["task"] == "cifar10" and record["n_examples"] == 20


def test_speech_commands_from_a_written_tree(runs: Path, tmp_path: Path) -> None:
    root = write_speech_commands(tmp_path / "sc")
    record = _record(run_cli("run", "--task", "speech-commands", "--protocol", "smoke", "--data-dir", str(root),
                             "--json", "--quiet", runs_dir=runs))
    assert record["n_examples"] == 3 and record["n_train"] == 12


@pytest.mark.parametrize(("args", "expected"), [
    (["--task", "cifar10"], "downloads are off): pass --data-dir DIR holding cifar-10-python.tar.gz"),
    (["--task", "cifar10", "--data-dir", "/no/such/dir"], "does not exist"),
    (["--task", "fashion-mnist", "--data-dir", "/tmp"], "expected the Fashion-MNIST files"),
    (["--task", "speech-commands"], "speech-commands needs --data-dir"),
    (["--task", "fashion-mnist", "--backbone", "efficientnet_b99"], "not a registered backbone nor a timm model"),
    (["--task", "fashion-mnist", "--backbone", "resnet18"], "HF_HUB_OFFLINE=1 is set"),
    (["--task", "fashion-mnist", "--backbone", "minilm"], "is a text backbone; this task needs an image one"),
    (["--task", "ner", "--data-dir", "/tmp"], "takes no --data-dir"),
])
def test_bad_vision_and_speech_input(runs: Path, args: list[str], expected: str) -> None:
    out = run_cli("run", *args, runs_dir=runs)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr


def test_corrupt_wav_in_speech_commands_is_exit_2(runs: Path, tmp_path: Path) -> None:
    root = write_speech_commands(tmp_path / "sc")
    (root / "go" / "spk00_nohash_0.wav").write_bytes(b"RIFF....garbage")
    out = run_cli("run", "--task", "speech-commands", "--protocol", "smoke", "--data-dir", str(root), runs_dir=runs)
    assert out.returncode == 2, out.stderr
    assert "spk00_nohash_0.wav" in out.stderr.strip().splitlines()[-1]
