"""`cifar10`: CIFAR-10 (Krizhevsky 2009), 32x32 colour images in 10 classes, 50k train / 10k test.

Data: the standard python archive `cifar-10-python.tar.gz` (or its extracted `cifar-10-batches-py/`)
in `--data-dir DIR`; without it, torchvision's downloader into the harness cache when downloads are
allowed. The batches are read with an unpickler that can only build numpy arrays. Split: the official
test batch is the test split; 5,000 training images (by pixel sha256) form dev. Metrics: top-1, macro-F1, ECE.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.assets import file_digest
from harness.datasets import CIFAR_FILES, image_splits, locate_dataset, read_cifar10
from harness.errors import UsageError, first_line
from harness.image_tasks import ImageClassificationTask
from harness.protocol import TrainingProtocol, protocol_table
from harness.task import Example, TaskSpec, register_task

LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@register_task
class Cifar10Task(ImageClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="cifar10",
        default_backbone="efficientnet-lite0",
        version="2",  # v2: weights store batch-norm statistics, so the tested model is restored exactly
        description="CIFAR-10, 10 classes; official test batch, 5k dev images held out of train",
        license="MIT-style (CIFAR-10 terms: cite the tech report)",
        citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
        data_sources=("--data-dir with cifar-10-python.tar.gz", "torchvision download"),
    )
    label_names: ClassVar[tuple[str, ...]] = LABELS
    accepts_data_dir: ClassVar[bool] = True
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-3, head_lr=1e-3, train_limit=64,
                               dev_limit=32, test_limit=64, inputs={"image_size": 32}),
        quick=TrainingProtocol(epochs=2, batch_size=32, lr=1e-3, head_lr=1e-3, train_limit=3000,
                               dev_limit=500, test_limit=2000, inputs={"image_size": 64}),
        standard=TrainingProtocol(epochs=10, batch_size=64, lr=3e-4, head_lr=1e-3,
                                  inputs={"image_size": 224}),
    )

    def _location(self) -> Path:
        return locate_dataset("cifar10", self.data_dir, find_cifar10, download=_download,
                              expected="cifar-10-python.tar.gz or cifar-10-batches-py/",
                              install_hint="pass --data-dir DIR holding cifar-10-python.tar.gz")

    def _files(self) -> list[Path]:
        location = self._location()
        for folder in (location, location / "cifar-10-batches-py"):
            if all((folder / n).is_file() for n in CIFAR_FILES):
                return [folder / n for n in CIFAR_FILES]
        archive = location / "cifar-10-python.tar.gz" if location.is_dir() else location
        return [archive]

    def data_fingerprint(self) -> str:
        return file_digest(*self._files())

    def read_splits(self) -> dict[str, list[Example]]:
        location = self._location()
        try:
            data, names = read_cifar10(location)
        except UsageError:
            raise
        except Exception as exc:  # a batch that unpickles to the wrong shapes or types: bad data, one line
            raise UsageError(f"CIFAR-10 data in {location} is not readable: {type(exc).__name__}: "
                             f"{first_line(exc)}") from None
        if tuple(names) != LABELS:
            raise UsageError(f"unexpected CIFAR-10 label names {names}")
        return image_splits("cifar10", "cifar10-v1", data["train"], data["test"], LABELS,
                            train_dev=(("train", 0.9), ("dev", 0.1)))


def find_cifar10(location: Path) -> Path | None:
    """`location` when it holds the python archive (or is it), or the extracted batches; else None."""
    if location.is_file() or (location / "cifar-10-python.tar.gz").is_file():
        return location
    for folder in (location, location / "cifar-10-batches-py"):
        if all((folder / n).is_file() for n in CIFAR_FILES):
            return location
    return None


def _download(root: Path) -> Path:
    """torchvision's downloader (when online) into the harness cache."""
    from torchvision.datasets import CIFAR10

    CIFAR10(str(root), train=True, download=True)
    return root
