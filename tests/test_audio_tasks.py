"""Audio tasks on data the tests write: a tiny Google Speech Commands tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datagen import WORDS, write_speech_commands, write_tone
from harness.audio_tasks import load_clip
from harness.errors import UsageError
from harness.task import TASKS


def _task(root: Path):
    return TASKS.get("speech-commands")(data_dir=str(root))


def test_speech_commands_layout(tmp_path: Path) -> None:
    task = _task(write_speech_commands(tmp_path / "sc"))
    assert task.label_names == WORDS  # _background_noise_ is not a class
    splits = {s: task.load_split(s) for s in ("train", "dev", "test")}
    assert [len(v) for v in splits.values()] == [12, 3, 3]
    assert {Path(e.input).name for e in splits["test"]} == {"spk05_nohash_0.wav"}
    before = task.data_fingerprint()
    write_tone(tmp_path / "sc" / "go" / "spk09_nohash_0.wav", 440)
    assert _task(tmp_path / "sc").data_fingerprint() != before


def test_speech_commands_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs --data-dir"):
        TASKS.get("speech-commands")().data_fingerprint()
    with pytest.raises(UsageError, match="no word folders"):
        _task(tmp_path).data_fingerprint()
    root = write_speech_commands(tmp_path / "sc")
    (root / "testing_list.txt").unlink()
    with pytest.raises(UsageError, match="lacks testing_list.txt"):
        _task(root).load_split("test")


def test_wrong_wav_format_is_a_clear_error(tmp_path: Path) -> None:
    write_tone(tmp_path / "eight_bit.wav", 440, width=1)
    with pytest.raises(UsageError, match="eight_bit.wav"):
        load_clip(str(tmp_path / "eight_bit.wav"), 16000, 1.0)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(UsageError, match="text.wav"):
        load_clip(str(tmp_path / "text.wav"), 16000, 1.0)


def test_clips_are_resampled_and_fitted(tmp_path: Path) -> None:
    write_tone(tmp_path / "long.wav", 440, rate=22050, seconds=1.7)
    clip = load_clip(str(tmp_path / "long.wav"), 16000, 1.0)
    assert clip.shape == (16000,) and clip.dtype == np.float32
    assert 0.2 < np.abs(clip).max() < 0.35
