"""`cifar10`: CIFAR-10 (Krizhevsky 2009), 32x32 colour images in 10 classes, 50k train / 10k test.

Data: the standard python archive `cifar-10-python.tar.gz` (or its extracted `cifar-10-batches-py/`)
in `--data-dir DIR`; without it, torchvision's downloader into the harness cache when downloads are
allowed. The batches are read with an unpickler that can only build numpy arrays. Split: the official
test batch is the test split; 5,000 training images (by pixel sha256) form dev. Metrics: top-1, macro-F1, ECE.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.assets import data_cache_dir, downloads_allowed, file_digest
from harness.classification import classification_metrics
from harness.datasets import CIFAR_FILES, read_cifar10
from harness.errors import UsageError
from harness.image_tasks import ImageClassificationTask
from harness.protocol import TrainingProtocol
from harness.splits import hash_split
from harness.task import Example, TaskSpec, register_task

LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@register_task
class Cifar10Task(ImageClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="cifar10",
        modality="image",
        kind="image-classification",
        metrics=classification_metrics("top1"),
        default_backbone="efficientnet-lite0",
        version="2",  # v2: weights store batch-norm statistics, so the tested model is restored exactly
        description="CIFAR-10, 10 classes; official test batch, 5k dev images held out of train",
        license="MIT-style (CIFAR-10 terms: cite the tech report)",
        citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
        data_sources=("--data-dir with cifar-10-python.tar.gz", "torchvision download"),
    )
    label_names: ClassVar[tuple[str, ...]] = LABELS
    accepts_data_dir: ClassVar[bool] = True
    protocols: ClassVar[dict[str, TrainingProtocol]] = {
        "smoke": TrainingProtocol("smoke", epochs=1, batch_size=16, lr=1e-3, head_lr=1e-3, train_limit=64,
                                  dev_limit=32, test_limit=64, inputs={"image_size": 32}),
        "quick": TrainingProtocol("quick", epochs=2, batch_size=32, lr=1e-3, head_lr=1e-3, train_limit=3000,
                                  dev_limit=500, test_limit=2000, inputs={"image_size": 64}),
        "standard": TrainingProtocol("standard", epochs=10, batch_size=64, lr=3e-4, head_lr=1e-3,
                                     inputs={"image_size": 224}),
    }

    def _location(self) -> Path:
        if self.data_dir is not None:
            location = Path(self.data_dir).expanduser()
            if not location.exists():
                raise UsageError(f"--data-dir {location} does not exist")
            return location
        cached = data_cache_dir("cifar10")
        if (cached / "cifar-10-batches-py").is_dir():
            return cached
        if downloads_allowed():
            from torchvision.datasets import CIFAR10

            try:
                CIFAR10(str(cached), train=True, download=True)
            except Exception as exc:
                raise UsageError(f"CIFAR-10 download failed: {exc}") from None
            return cached
        raise UsageError("cifar10 needs --data-dir DIR holding cifar-10-python.tar.gz (downloads are off)")

    def _files(self) -> list[Path]:
        location = self._location()
        for folder in (location, location / "cifar-10-batches-py"):
            if all((folder / n).is_file() for n in CIFAR_FILES):
                return [folder / n for n in CIFAR_FILES]
        archive = location / "cifar-10-python.tar.gz" if location.is_dir() else location
        return [archive]

    def data_fingerprint(self) -> str:
        files = self._files()
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UsageError(f"no CIFAR-10 python data at {self._location()}: expected cifar-10-python.tar.gz "
                             "or cifar-10-batches-py/")
        return file_digest(*files)

    def read_splits(self) -> dict[str, list[Example]]:
        data, names = read_cifar10(self._location())
        if tuple(names) != LABELS:
            raise UsageError(f"unexpected CIFAR-10 label names {names}")
        train_x, train_y = data["train"]
        rows = [(f"cifar10-train-{i:05d}", train_x[i], LABELS[train_y[i]]) for i in range(len(train_x))]
        parts = hash_split(rows, key=lambda r: r[1].tobytes().hex(), salt="cifar10-v1",
                           fractions=(("train", 0.9), ("dev", 0.1)))
        test_x, test_y = data["test"]
        test = [(f"cifar10-test-{i:05d}", test_x[i], LABELS[test_y[i]]) for i in range(len(test_x))]
        parts["test"] = hash_split(test, key=lambda r: r[0], salt="cifar10-v1", fractions=(("test", 1.0),))["test"]
        return {name: [Example(*r) for r in rows] for name, rows in parts.items()}
