"""Image dataset readers and tasks on data the tests write: IDX, the CIFAR-10 python archive."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from datagen import idx_bytes, write_cifar_archive, write_fashion_mnist
from harness.datasets import read_cifar10, read_idx, safe_unpickle
from harness.errors import UsageError
from harness.task import get_task
from harness_tasks.cifar10 import LABELS as CIFAR_LABELS


def test_read_idx_and_errors(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), array)
    (tmp_path / "short.idx").write_bytes(idx_bytes(array)[:-1])
    with pytest.raises(UsageError, match="header declares 24"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "junk.idx").write_bytes(b"hello world")
    with pytest.raises(UsageError, match="not an IDX file"):
        read_idx(tmp_path / "junk.idx")


def test_fashion_mnist_from_a_user_directory(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    task = get_task_with_dir("fashion-mnist", tmp_path / "fm")
    splits = {s: task.load_split(s) for s in ("train", "dev", "test")}
    assert len(splits["train"]) + len(splits["dev"]) == 120 and len(splits["test"]) == 40
    assert splits["train"][0].input.shape == (28, 28)
    assert task.data_fingerprint().startswith("sha256:")


def test_fashion_mnist_missing_or_corrupt_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="expected the Fashion-MNIST files"):
        get_task_with_dir("fashion-mnist", tmp_path).data_fingerprint()
    write_fashion_mnist(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UsageError, match="t10k-images"):
        get_task_with_dir("fashion-mnist", tmp_path / "fm").load_split("test")


def test_cifar10_python_archive(tmp_path: Path) -> None:
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    data, names = read_cifar10(tmp_path)
    assert tuple(names) == CIFAR_LABELS
    assert data["train"][0].shape == (100, 32, 32, 3) and data["test"][0].shape == (20, 32, 32, 3)
    task = get_task_with_dir("cifar10", tmp_path)
    assert len(task.load_split("test")) == 20
    assert {e.target for e in task.load_split("train")} <= set(CIFAR_LABELS)


def test_cifar10_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(UsageError, match="refusing to load"):
        safe_unpickle(pickle.dumps(Exploit()), "evil")


def test_cifar10_bad_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no CIFAR-10 python data"):
        read_cifar10(tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"garbage")
    with pytest.raises(UsageError, match=r"not a readable \.tar\.gz"):
        read_cifar10(tmp_path)


def test_task_without_data_dir_rejects_one() -> None:
    with pytest.raises(UsageError, match="takes no --data-dir"):
        get_task_with_dir("ner", Path("/tmp"))


def get_task_with_dir(name: str, folder: Path):
    from harness.task import TASKS

    return TASKS.get(name)(data_dir=str(folder))


def test_default_fashion_mnist_needs_debian_package_or_data_dir() -> None:
    task = get_task("fashion-mnist")
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        with pytest.raises(UsageError, match="apt-get install dataset-fashion-mnist"):
            task.data_fingerprint()
    else:
        assert len(task.load_split("test")) == 10_000
