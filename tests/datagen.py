"""Small data sets in the real on-disk formats, written by tests (never downloaded)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import wave
from pathlib import Path

import numpy as np

from harness_tasks.cifar10 import LABELS as CIFAR_LABELS
from harness_tasks.fashion_mnist import FILES as FMNIST_FILES

WORDS = ("go", "stop", "yes")


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fashion_mnist(folder: Path, n_train: int = 120, n_test: int = 40) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(FMNIST_FILES, arrays, strict=True):
        (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))


def _batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps({b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": []}, protocol=2)


def write_cifar_archive(path: Path, per_batch: int = 20) -> None:
    members = {f"data_batch_{i}": _batch(per_batch, i) for i in range(1, 6)}
    members["test_batch"] = _batch(per_batch, 9)
    members["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in CIFAR_LABELS]}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_tone(path: Path, freq: float, rate: int = 16000, seconds: float = 1.0, width: int = 2) -> None:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(width)
        wf.setframerate(rate)
        wf.writeframes(samples.tobytes())


def write_speech_commands(root: Path, speakers: int = 6) -> Path:
    for w, word in enumerate(WORDS):
        for s in range(speakers):
            write_tone(root / word / f"spk{s:02d}_nohash_0.wav", 300 + 200 * w + 10 * s)
    write_tone(root / "_background_noise_" / "white_noise.wav", 1000)
    (root / "validation_list.txt").write_text("".join(f"{w}/spk04_nohash_0.wav\n" for w in WORDS))
    (root / "testing_list.txt").write_text("".join(f"{w}/spk05_nohash_0.wav\n" for w in WORDS))
    return root
