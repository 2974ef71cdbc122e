"""16-bit PCM WAV input/output with the standard library, plus resampling and length fitting.

Only 16-bit integer PCM is accepted: it is what the harness writes and what speech corpora ship, and
refusing everything else with a clear message beats silently misreading 8-bit (unsigned) or float data.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from harness.errors import UsageError
from harness.store import write_atomic

_WAVE_FORMAT_PCM = 1


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Float32 mono samples in [-1, 1] (stereo is averaged) and the sample rate of a 16-bit PCM WAV file."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, rate, frames = wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()
            raw = wf.readframes(frames)
    except FileNotFoundError as exc:
        raise UsageError(f"WAV file not found: {path}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (wave.Error, EOFError) as exc:
        # wave.Error covers "not RIFF", "unknown format" (float, compressed, extensible) and bad headers.
        reason = str(exc) or "truncated header"
        raise UsageError(f"cannot read {path}: not a 16-bit PCM WAV file ({reason})") from exc
    _check_format(path, channels, width, rate, frames, raw)
    pcm = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0
    return pcm.mean(axis=1) if channels > 1 else pcm[:, 0], rate


def _check_format(path: Path, channels: int, width: int, rate: int, frames: int, raw: bytes) -> None:
    if width != 2:
        raise UsageError(f"cannot read {path}: {8 * width}-bit samples, only 16-bit PCM WAV is supported")
    if channels not in (1, 2):
        raise UsageError(f"cannot read {path}: {channels} channels, only mono or stereo is supported")
    if rate <= 0:
        raise UsageError(f"cannot read {path}: invalid sample rate {rate}")
    if frames == 0:
        raise UsageError(f"cannot read {path}: the file holds no audio")
    if len(raw) != frames * channels * width:  # the header promises more data than the file holds
        raise UsageError(f"cannot read {path}: truncated ({len(raw)} of {frames * channels * width} data bytes)")


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write mono float samples in [-1, 1] as 16-bit PCM, atomically (readers never see a partial file)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise UsageError(f"write_wav expects mono samples, got shape {samples.shape} for {path}")
    if not np.all(np.isfinite(samples)):
        raise UsageError(f"cannot write {path}: samples contain NaN or infinity")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(int(rate))
        wf.writeframes(pcm.tobytes())
    write_atomic(Path(path), buffer.getvalue())


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc), float32 in, float32 out."""
    samples = np.asarray(samples, dtype=np.float32)
    if orig_rate == new_rate:
        return samples.copy()
    import torch  # heavy; only the callers that resample pay for it
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples)), int(orig_rate), int(new_rate))
    return out.numpy().astype(np.float32, copy=False)


def fit_length(samples: np.ndarray, n: int) -> np.ndarray:
    """Exactly `n` samples: the centre `n` of a longer signal, or the signal centred in zeros."""
    samples = np.asarray(samples, dtype=np.float32)
    if n <= 0:
        raise UsageError(f"fit_length needs a positive length, got {n}")
    excess = len(samples) - n
    if excess >= 0:
        start = excess // 2
        return samples[start:start + n].copy()
    out = np.zeros(n, dtype=np.float32)
    start = -excess // 2
    out[start:start + len(samples)] = samples
    return out
