"""`fashion-mnist`: 10-class clothing images (Xiao et al. 2017), 28x28 grayscale, 60k train / 10k test.

Where the data comes from, in order: `--data-dir DIR` (the four IDX files, gzipped or not); the Debian
package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist); torchvision's downloader into the
harness cache when downloads are allowed (HARNESS_OFFLINE and HF_HUB_OFFLINE unset).
Split: the official test set is the test split; 5,000 of the official training images (chosen by the
sha256 of their pixels, so duplicates stay together) form dev. Metrics: top-1, macro-F1, ECE.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.assets import file_digest
from harness.datasets import image_splits, locate_dataset, read_idx
from harness.errors import UsageError
from harness.image_tasks import ImageClassificationTask
from harness.protocol import SEARCH_IMAGE, SEARCH_SMOKE, TrainingProtocol, protocol_table
from harness.task import Example, TaskSpec, register_task

LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def find_files(folder: Path) -> list[Path] | None:
    found = []
    for name in FILES:
        path = next((folder / n for n in (name + ".gz", name) if (folder / n).is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


@register_task
class FashionMnistTask(ImageClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="fashion-mnist",
        default_backbone="efficientnet-lite0",
        version="2",  # v2: quick at 128 px (a 4x4 last-stage map for Grad-CAM); batch-norm statistics stored
        description="Fashion-MNIST, 10 clothing classes; official test set, 5k dev images held out of train",
        license="MIT",
        citation="Xiao, Rasul and Vollgraf 2017, Fashion-MNIST: a Novel Image Dataset for Benchmarking ML",
        data_sources=("debian:dataset-fashion-mnist", "--data-dir with the IDX files", "torchvision download"),
    )
    label_names: ClassVar[tuple[str, ...]] = LABELS
    accepts_data_dir: ClassVar[bool] = True
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-3, head_lr=1e-3, train_limit=64,
                               dev_limit=32, test_limit=64, inputs={"image_size": 32}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=2, batch_size=32, lr=1e-3, head_lr=1e-3, train_limit=3000,
                               dev_limit=500, inputs={"image_size": 128}, search=SEARCH_IMAGE),
        standard=TrainingProtocol(epochs=10, batch_size=64, lr=3e-4, head_lr=1e-3,
                                  inputs={"image_size": 224}, search=SEARCH_IMAGE),
    )

    def _files(self) -> list[Path]:
        return locate_dataset("fashion-mnist", self.data_dir, find_files, places=(DEBIAN_DIR,),
                              expected=f"the Fashion-MNIST files {', '.join(FILES)} (.gz ok)",
                              download=_download,
                              install_hint="apt-get install dataset-fashion-mnist, or pass --data-dir")

    def data_fingerprint(self) -> str:
        return file_digest(*self._files())

    def read_splits(self) -> dict[str, list[Example]]:
        train_x, train_y, test_x, test_y = (read_idx(p) for p in self._files())
        if len(train_x) != len(train_y) or len(test_x) != len(test_y) or train_x.shape[1:] != (28, 28):
            raise UsageError("Fashion-MNIST files are inconsistent (image and label counts or sizes differ)")
        return image_splits("fmnist", "fashion-mnist-v1", (train_x, train_y), (test_x, test_y), LABELS,
                            train_dev=(("train", 55 / 60), ("dev", 5 / 60)))


def _download(root: Path) -> list[Path]:
    """torchvision's downloader (when online) into the harness cache."""
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=True, download=True)
    FashionMNIST(str(root), train=False, download=True)
    files = find_files(root / "FashionMNIST" / "raw")
    if files is None:
        raise UsageError(f"Fashion-MNIST download into {root} left no IDX files")
    return files
