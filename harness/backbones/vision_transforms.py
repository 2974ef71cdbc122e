"""Image preprocessing for vision backbones: any image in, a normalised tensor out (timm's eval recipe).

Needs torchvision but not timm, so image tasks can build a backbone's transform from its data config alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from torchvision import transforms as T


class ToRGBImage:
    """PIL image or uint8 array (H x W or H x W x 3/4) -> RGB PIL image. A class: DataLoader workers pickle it."""

    def __call__(self, image: Any) -> Any:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(_checked_array(image))
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _checked_array(array: np.ndarray) -> np.ndarray:
    """A uint8 H x W or H x W x 3/4 array (a single channel squeezed), or a ValueError saying what it is."""
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected an H x W or H x W x 3 image array, got shape {array.shape}")
    return array


def build_transform(data_config: Mapping[str, Any], image_size: int | None = None, train: bool = False) -> Any:
    """Image -> normalised [3, size, size] float tensor, following timm's eval recipe.

    Resize the shorter side to floor(size / crop_pct) with the config's interpolation, center-crop `size`,
    scale to [0, 1], normalise. `image_size` replaces the config's size (e.g. 64 px for CPU protocols).
    Training adds only a random horizontal flip (torch's RNG, so seeded runs repeat).
    """
    size = int(image_size or data_config["input_size"][-1])
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    interpolation = T.InterpolationMode(data_config.get("interpolation") or "bilinear")
    steps: list[Any] = [ToRGBImage(), T.Resize(math.floor(size / crop_pct), interpolation=interpolation),
                        T.CenterCrop(size)]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean=tuple(data_config["mean"]), std=tuple(data_config["std"]))]
    return T.Compose(steps)
