"""Offline speech data: eSpeak NG synthesis, 16-bit WAV I/O and the cached keyword corpus."""

from __future__ import annotations

import json
import struct
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from harness.audio import espeak, keyword_corpus
from harness.audio.keyword_corpus import KeywordRecipe, ensure_corpus
from harness.audio.wav import fit_length, read_wav, resample, write_wav
from harness.errors import UsageError


def test_synthesis_is_speech_of_plausible_length() -> None:
    samples, rate = espeak.synthesize("stop", voice="en-gb-x-rp+f2", rate=175, pitch=50)
    assert rate == 22050
    assert samples.dtype == np.float32
    assert 0.15 < len(samples) / rate < 1.5
    assert np.abs(samples).max() <= 1.0
    assert np.sqrt(np.mean(samples**2)) > 0.01  # not silence


def test_slower_rate_speaks_longer() -> None:
    fast, _ = espeak.synthesize("left right", rate=300)
    slow, _ = espeak.synthesize("left right", rate=100)
    assert len(slow) > 1.5 * len(fast)


def test_synthesis_is_thread_safe() -> None:
    # eSpeak NG's state is global: concurrent callers must not interleave each other's audio.
    with ThreadPoolExecutor(max_workers=4) as pool:
        lengths = list(pool.map(lambda word: len(espeak.synthesize(word, rate=120)[0]), ["go", "no"] * 8))
    assert all(n > 2000 for n in lengths)
    assert max(lengths) < 1.5 * min(lengths)


def test_english_voices_and_variants_are_listed() -> None:
    voices = espeak.english_voices()
    assert {"en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029"} <= set(voices)
    assert {"m1", "m7", "f1", "f5"} <= set(espeak.variant_names())


@pytest.mark.parametrize(("voice", "message"), [("xx-nowhere", "unknown eSpeak NG voice"),
                                                ("en-us+nobody", "unknown eSpeak NG voice variant")])
def test_unknown_voice_is_a_usage_error(voice: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        espeak.synthesize("yes", voice=voice)


def test_missing_library_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(espeak, "_engine", None)  # force a fresh load; the real engine comes back afterwards
    monkeypatch.setattr(espeak, "_library_paths", lambda: (tmp_path / "libespeak-ng.so", tmp_path))
    with pytest.raises(UsageError, match="cannot load the eSpeak NG library"):
        espeak.synthesize("yes")


def test_wav_round_trip(tmp_path: Path) -> None:
    samples = (0.5 * np.sin(np.arange(8000) / 7)).astype(np.float32)
    path = tmp_path / "tone.wav"
    write_wav(path, samples, 16000)
    loaded, rate = read_wav(path)
    assert rate == 16000
    np.testing.assert_allclose(loaded, samples, atol=1 / 32767)
    assert [p.name for p in tmp_path.iterdir()] == ["tone.wav"]  # no temp file left behind


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    frames = np.array([[1000, 3000], [-2000, 0]], dtype="<i2")
    _write_raw(path, channels=2, width=2, data=frames.tobytes())
    loaded, _ = read_wav(path)
    np.testing.assert_allclose(loaded, np.array([2000, -1000]) / 32768)


def _write_raw(path: Path, channels: int, width: int, data: bytes, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(width)
        wf.setframerate(rate)
        wf.writeframes(data)


def _float32_wav(path: Path) -> None:
    """A WAVE_FORMAT_IEEE_FLOAT (format tag 3) file, which the stdlib writer cannot produce."""
    data = np.zeros(100, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _truncated(path: Path) -> None:
    write_wav(path, np.zeros(1000, dtype=np.float32), 16000)
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: _write_raw(p, channels=1, width=1, data=bytes(100)), "8-bit"),
    (lambda p: _write_raw(p, channels=1, width=3, data=bytes(300)), "24-bit"),
    (_float32_wav, "16-bit PCM"),
    (lambda p: p.write_bytes(b"ID3\x03 definitely an mp3, not a RIFF file"), "not a 16-bit PCM WAV"),
    (lambda p: p.write_bytes(b"RIFF\x10\x00"), "not a 16-bit PCM WAV"),
    (_truncated, "truncated"),
    (lambda p: _write_raw(p, channels=1, width=2, data=b""), "no audio"),
], ids=["8bit", "24bit", "float32", "not-riff", "short-header", "truncated", "empty"])
def test_unsupported_wav_is_a_usage_error_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "bad-input.wav"
    make(path)
    with pytest.raises(UsageError, match=reason) as info:
        read_wav(path)
    assert "bad-input.wav" in str(info.value)
    assert "\n" not in str(info.value)


def test_resample_and_fit_length() -> None:
    tone = np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050).astype(np.float32)
    out = resample(tone, 22050, 16000)
    assert out.dtype == np.float32 and len(out) == 16000
    assert fit_length(np.arange(10, dtype=np.float32), 4).tolist() == [3, 4, 5, 6]
    padded = fit_length(np.ones(3, dtype=np.float32), 7)
    assert padded.tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_trim_silence_keeps_only_the_sound() -> None:
    rate = 16000
    signal = np.concatenate([np.zeros(8000), 0.5 * np.ones(1600), np.zeros(8000)]).astype(np.float32)
    trimmed = keyword_corpus.trim_silence(signal, rate)
    assert 1600 <= len(trimmed) <= 1600 + 4 * 160  # the sound plus at most a frame or two of margin


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Counts real generations (as opposed to cache hits)."""
    calls: list[Path] = []
    original = keyword_corpus._generate

    def counting(root, recipe, progress):
        calls.append(root)
        return original(root, recipe, progress)

    monkeypatch.setattr(keyword_corpus, "_generate", counting)
    return calls


def test_small_corpus_is_generated_once_and_reused(tmp_path: Path, generations: list[Path]) -> None:
    recipe = KeywordRecipe.small()
    seen: list[tuple[int, int]] = []
    corpus = ensure_corpus(recipe, tmp_path, progress=lambda done, total: seen.append((done, total)))
    n = len(recipe.words) * len(recipe.voices) * len(recipe.rates) * len(recipe.pitches)
    assert len(corpus.clips) == n and seen[-1] == (n, n)
    assert corpus.root == tmp_path / "keywords" / recipe.hash
    assert (corpus.root / "fingerprint").read_text().strip() == corpus.fingerprint
    for clip in corpus.clips:
        samples, rate = read_wav(corpus.root / clip.path)
        assert rate == 16000 and len(samples) == 16000
        assert np.abs(samples).max() > 0.05
    mtime = (corpus.root / "fingerprint").stat().st_mtime_ns

    again = ensure_corpus(recipe, tmp_path)
    assert len(generations) == 1
    assert again.fingerprint == corpus.fingerprint and again.clips == corpus.clips
    assert (corpus.root / "fingerprint").stat().st_mtime_ns == mtime
    again.verify()


def test_default_cache_dir_follows_harness_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    recipe = KeywordRecipe.small()
    assert keyword_corpus.corpus_dir(recipe) == tmp_path / "cache" / "keywords" / recipe.hash


def test_interrupted_generation_is_redone(tmp_path: Path, generations: list[Path]) -> None:
    recipe = KeywordRecipe.small()
    first = ensure_corpus(recipe, tmp_path)
    # Simulate a crash after some clips were written: no manifest, no fingerprint, plus a stray file.
    (first.root / "fingerprint").unlink()
    (first.root / "manifest.json").unlink()
    (first.root / "clips" / "stale.wav").write_bytes(b"junk")
    second = ensure_corpus(recipe, tmp_path)
    assert len(generations) == 2
    assert json.loads((second.root / "manifest.json").read_text())["recipe_hash"] == recipe.hash
    assert not (second.root / "clips" / "stale.wav").exists()
    second.verify()


def test_missing_clip_triggers_regeneration(tmp_path: Path, generations: list[Path]) -> None:
    corpus = ensure_corpus(KeywordRecipe.small(), tmp_path)
    (corpus.root / corpus.clips[0].path).unlink()
    ensure_corpus(KeywordRecipe.small(), tmp_path)
    assert len(generations) == 2


def test_corrupt_clip_fails_verification(tmp_path: Path) -> None:
    corpus = ensure_corpus(KeywordRecipe.small(), tmp_path)
    path = corpus.root / corpus.clips[0].path
    path.write_bytes(path.read_bytes()[:-2] + b"\x01\x01")
    with pytest.raises(UsageError, match="corrupt"):
        corpus.verify()


def test_voices_are_held_out_whole() -> None:
    recipe = KeywordRecipe()
    splits = recipe.splits()
    assert set(splits) == set(recipe.voices) and 40 <= len(splits) <= 48
    by_split = {name: {v for v, s in splits.items() if s == name} for name in ("train", "dev", "test")}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["dev"])
    assert len(by_split["test"]) >= 0.15 * len(splits) and len(by_split["dev"]) >= 1
    assert KeywordRecipe().splits() == splits  # deterministic
    assert set(KeywordRecipe.small().splits().values()) == {"train", "dev", "test"}


def test_small_corpus_splits_are_disjoint_by_voice(tmp_path: Path) -> None:
    corpus = ensure_corpus(KeywordRecipe.small(), tmp_path)
    voices = {name: {c.voice for c in corpus.split(name)} for name in ("train", "dev", "test")}
    assert voices["train"] and voices["test"]
    assert not (voices["train"] & voices["test"]) and not (voices["train"] & voices["dev"])


def test_recipe_hash_tracks_every_field() -> None:
    base = KeywordRecipe.small()
    assert base.hash == KeywordRecipe.small().hash
    fewer_words = KeywordRecipe(words=("yes", "no"), voices=base.voices, rates=base.rates, pitches=base.pitches)
    assert fewer_words.hash != base.hash
    assert KeywordRecipe(words=base.words, voices=base.voices, rates=base.rates, pitches=base.pitches,
                         split_salt="other").hash != base.hash


def test_bad_recipe_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="duplicates"):
        KeywordRecipe(words=("yes", "yes"))
    with pytest.raises(UsageError, match="one voice per split"):
        KeywordRecipe(voices=("en-us+m1", "en-us+f1"))
