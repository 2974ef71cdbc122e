"""The CTranslate2 reader and the CTranslate2 -> transformers Whisper converter, on the packaged tiny.en and
base weights."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from whisper_decode import greedy_transcribe

from harness.backbones import whisper_packaged
from harness.backbones.ct2_reader import read_ct2_variables
from harness.backbones.whisper_convert import convert_whisper, whisper_state_dict
from harness.backbones.whisper_packaged import packaged_whisper_files


def _packaged_or_skip(name: str) -> tuple[list[Path], Path]:
    try:
        return packaged_whisper_files(name)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tiny_en() -> tuple[object, Path]:
    parts, files_dir = _packaged_or_skip("tiny.en")
    return convert_whisper(parts), files_dir / "tokenizer.json"


def _sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's fixed encoder position table (openai/whisper model.py)."""
    increment = np.log(10_000) / (channels // 2 - 1)
    scaled = np.arange(length)[:, None] * np.exp(-increment * np.arange(channels // 2))[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)


def test_tiny_en_converts_with_the_right_dimensions(tiny_en: tuple[object, Path]) -> None:
    model, _ = tiny_en
    c = model.config
    assert (c.d_model, c.encoder_layers, c.decoder_layers, c.encoder_attention_heads) == (384, 4, 4, 6)
    assert (c.encoder_ffn_dim, c.num_mel_bins, c.vocab_size, c.max_source_positions) == (1536, 80, 51864, 1500)
    assert (c.decoder_start_token_id, c.eos_token_id) == (50257, 50256)  # English-only vocabulary
    assert not model.training
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight  # the file aliases them
    positions = model.model.encoder.embed_positions.weight.detach().numpy()
    np.testing.assert_allclose(positions, _sinusoids(1500, 384), atol=2e-3)  # float16 decoded correctly


def test_base_converts_from_two_parts() -> None:
    parts, _ = _packaged_or_skip("base")
    assert len(parts) == 2
    model = convert_whisper(parts)  # strict load: no missing or unexpected key
    c = model.config
    assert (c.d_model, c.encoder_layers, c.decoder_layers, c.encoder_attention_heads) == (512, 6, 6, 8)
    assert c.vocab_size == 51865
    assert (c.decoder_start_token_id, c.eos_token_id) == (50258, 50257)  # multilingual ids, from tokenizer.json


def _header(version: int = 6, spec: bytes = b"WhisperSpec") -> bytes:
    name = spec + b"\0"
    return struct.pack("<I", version) + struct.pack("<H", len(name)) + name + struct.pack("<I", 3)


def test_bad_files_give_clear_value_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"this is not a model at all")
    with pytest.raises(ValueError, match="format version"):
        read_ct2_variables([garbage])

    old = tmp_path / "old.bin"
    old.write_bytes(_header(version=5))
    with pytest.raises(ValueError, match="format version 5"):
        read_ct2_variables([old])

    # One f32 variable of shape [4] whose data stops after 8 of its 16 bytes.
    name = b"encoder/conv1/bias\0"
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(_header() + struct.pack("<I", 1) + struct.pack("<H", len(name)) + name
                          + struct.pack("<BIBI", 1, 4, 0, 16) + b"\0" * 8)
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_variables([truncated])

    other = tmp_path / "other.bin"
    other.write_bytes(_header(spec=b"TransformerSpec") + struct.pack("<II", 0, 0))  # no variables, no aliases
    with pytest.raises(ValueError, match="not a Whisper model"):
        convert_whisper([other])

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="truncated"):
        convert_whisper([empty])


def test_truncated_packaged_model_and_split_reading(tmp_path: Path) -> None:
    parts, _ = _packaged_or_skip("tiny.en")
    with parts[0].open("rb") as f:
        head = f.read(200_000)  # the header and the first variables, cut mid-tensor
    first, second = tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"
    first.write_bytes(head[:50])  # the parts are read as one stream: this split falls inside a header
    second.write_bytes(head[50:])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_variables([first, second])


def test_unmappable_variable_is_named() -> None:
    parts, _ = _packaged_or_skip("tiny.en")
    variables = read_ct2_variables(parts)
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]  # alias resolved
    assert all(v.dtype == np.float32 for v in variables.values() if v.ndim)
    variables["decoder/layer_0/ffn/linear_0/weight_scale"] = np.ones(1536, np.float32)
    with pytest.raises(ValueError, match="weight_scale"):
        whisper_state_dict(variables)


def test_packaged_name_must_be_known_and_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="tiny.en"):
        packaged_whisper_files("large-v9")
    monkeypatch.setitem(whisper_packaged.PACKAGED_WHISPER, "tiny.en", (
        (("no_such_whisper_pkg", "model/model.bin"),), ("no_such_whisper_pkg", "model")))
    with pytest.raises(FileNotFoundError, match="pip install no-such-whisper-pkg"):
        packaged_whisper_files("tiny.en")


def test_tiny_en_transcribes_synthesised_speech(tiny_en: tuple[object, Path]) -> None:
    espeak = pytest.importorskip("harness.audio.espeak")
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    model, tokenizer_json = tiny_en
    sentence = "the quick brown fox jumps over the lazy dog"
    wave, rate = espeak.synthesize(sentence)
    audio = torchaudio.functional.resample(torch.from_numpy(wave), rate, 16_000).numpy()
    text = greedy_transcribe(model, tokenizer_json, audio).lower()
    heard = set(text.replace(".", " ").replace(",", " ").split())
    expected = sentence.split()
    assert sum(word in heard for word in expected) >= 6, text
