"""Finding and reading standard datasets, with one-line errors for anything missing or malformed.

`locate_dataset` is the one lookup order for data a user keeps (`--data-dir`, system packages, the
cache, a download); `image_splits` the one train/dev/test split of official image sets. Readers:
IDX (MNIST/Fashion-MNIST) and the CIFAR python archive. The CIFAR batches are pickles: they are read
with an unpickler that can build only numpy arrays and plain containers, so a hostile file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from harness.assets import data_cache_dir, downloads_allowed
from harness.errors import UsageError
from harness.splits import hash_split
from harness.task import Example

T = TypeVar("T")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz): uint8 data with its declared dimensions."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise UsageError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UsageError(f"{path} is truncated")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise UsageError(f"{path} holds {len(data) - header} bytes of data, its header declares {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def safe_unpickle(data: bytes, source: str) -> Any:
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UsageError(f"{source}: not a CIFAR batch ({exc})") from None


def _key(batch: dict, name: str) -> Any:
    for key in (name, name.encode()):
        if key in batch:
            return batch[key]
    raise UsageError(f"CIFAR batch has no '{name}' entry")


CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")


def read_cifar10(location: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """{'train'|'test': (images N x 32 x 32 x 3 uint8, labels N)}, label names; from the python archive
    `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/` folder."""
    raw = _cifar_members(location)
    meta = safe_unpickle(raw["batches.meta"], f"{location}/batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in _key(meta, "label_names")]
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for member in CIFAR_FILES[:-1]:
        batch = safe_unpickle(raw[member], f"{location}/{member}")
        data = np.asarray(_key(batch, "data"), dtype=np.uint8)
        labels = np.asarray(_key(batch, "labels"), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise UsageError(f"{location}/{member}: expected N x 3072 pixels and N labels, got {data.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise UsageError(f"{location}/{member}: label out of range for {len(names)} classes")
        split = "test" if member == "test_batch" else "train"
        parts[split][0].append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        parts[split][1].append(labels)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in parts.items()}, names


def _cifar_members(location: Path) -> dict[str, bytes]:
    candidates = [location, location / "cifar-10-batches-py"]
    for folder in candidates:
        if all((folder / name).is_file() for name in CIFAR_FILES):
            return {name: (folder / name).read_bytes() for name in CIFAR_FILES}
    archive = location / "cifar-10-python.tar.gz" if location.is_dir() else location
    if archive.is_file():
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = [n for n in CIFAR_FILES if n not in members]
                if missing:
                    raise UsageError(f"{archive} lacks {', '.join(missing)}")
                return {n: tar.extractfile(members[n]).read() for n in CIFAR_FILES}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UsageError(f"{archive} is not a readable .tar.gz archive: {exc}") from None
    raise UsageError(f"no CIFAR-10 python data in {location}: expected cifar-10-python.tar.gz or "
                     f"cifar-10-batches-py/ with {', '.join(CIFAR_FILES)}")


def locate_dataset(name: str, data_dir: str | None, find: Callable[[Path], T | None], expected: str,
                   places: Sequence[Path] = (), download: Callable[[Path], T] | None = None,
                   install_hint: str = "pass --data-dir") -> T:
    """Where a dataset's files are, in order: the user's `--data-dir` (which must hold them), then fixed
    system `places` and the harness cache, then `download` into the cache when downloads are allowed.
    `find(folder)` returns the files found in a folder, or None; every failure is one UsageError line."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.exists():
            raise UsageError(f"--data-dir {folder} does not exist")
        found = find(folder)
        if found is None:
            raise UsageError(f"--data-dir {folder}: expected {expected}")
        return found
    cache = data_cache_dir(name)
    tried = []
    for folder in (*places, cache):
        found = find(folder)
        if found is not None:
            return found
        tried.append(str(folder))
    if download is None or not downloads_allowed():
        raise UsageError(f"{name} not found (looked in {', '.join(tried)}; downloads are off): {install_hint}")
    try:
        return download(cache)
    except UsageError:
        raise
    except Exception as exc:  # network, disk, a changed mirror: all one line to the user
        raise UsageError(f"{name} download failed: {exc}") from None


def image_splits(prefix: str, salt: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                 labels: Sequence[str], train_dev: Sequence[tuple[str, float]]) -> dict[str, list[Example]]:
    """Official train/test arrays as examples: dev is drawn out of train by the sha256 of the pixels (so
    duplicate images stay together), test keeps the official set in a hashed, fixed order."""
    (train_x, train_y), (test_x, test_y) = train, test
    rows = [(f"{prefix}-train-{i:05d}", train_x[i], labels[train_y[i]]) for i in range(len(train_x))]
    parts = hash_split(rows, key=lambda r: r[1].tobytes().hex(), salt=salt, fractions=train_dev)
    held = [(f"{prefix}-test-{i:05d}", test_x[i], labels[test_y[i]]) for i in range(len(test_x))]
    parts["test"] = hash_split(held, key=lambda r: r[0], salt=salt, fractions=(("test", 1.0),))["test"]
    return {name: [Example(*r) for r in items] for name, items in parts.items()}
