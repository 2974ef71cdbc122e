"""The one supervised loop every supervised task runs through, whatever its modality.

The task supplies data (load_split), batching (collate) and the loss/prediction step; the backbone
adapter supplies features. Nothing here knows about text, images or audio.
"""

from __future__ import annotations

import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object, send_to_device
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from harness.errors import RunFailed
from harness.progress import ProgressReporter
from harness.protocol import TrainingProtocol
from harness.task import Example, SupervisedTask
from harness.training.distributed import per_device_batch, world_size
from harness.training.feature_cache import FeatureCache, pooled_layer_features
from harness.training.model import TaskModel
from harness.training.seeding import seed_everything

log = logging.getLogger("harness")


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ids: list[str]
    preds: list[Any]
    refs: list[Any]
    loss: float
    seconds: float


@dataclass
class TrainResult:
    test: EvalResult
    best_epoch: int
    dev_history: list[dict[str, float]] = field(default_factory=list)
    timing: dict[str, Any] = field(default_factory=dict)
    trainable_state: dict[str, torch.Tensor] = field(default_factory=dict)
    n_train: int = 0
    n_dev: int = 0


def train_and_evaluate(task: SupervisedTask, model: TaskModel, protocol: TrainingProtocol, seed: int, device: str,
                       progress: ProgressReporter, deterministic: bool = False,
                       feature_cache: FeatureCache | None = None) -> TrainResult:
    """Train on train, pick the best epoch on dev, test it. With a frozen backbone and a task whose
    head pools (classification), features are computed once per split (through `feature_cache` when
    given) and the loop trains the head on them; the numbers are the same either way."""
    generator = seed_everything(seed, deterministic)
    splits = {name: task.load_split(name, getattr(protocol, f"{name}_limit")) for name in ("train", "dev", "test")}
    log.info("data: %d train, %d dev, %d test examples", *(len(v) for v in splits.values()))
    accelerator = _accelerator(device)
    timing: dict[str, Any] = {}
    collates = _collates(task, model, protocol, splits, accelerator, progress, feature_cache, timing)

    train_loader = _train_loader(splits["train"], protocol, generator, collates["train"], accelerator)
    optimizer = torch.optim.AdamW(_param_groups(model, protocol))
    total_steps = max(1, protocol.epochs * len(train_loader))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(protocol.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    loop = _Loop(task, model, optimizer, scheduler, accelerator, protocol, progress)
    primary = task.spec.primary

    best_value, best_epoch, best_state = -math.inf, 0, None
    history: list[dict[str, float]] = []
    train_seconds = 0.0
    for epoch in range(1, protocol.epochs + 1):
        started = time.perf_counter()
        train_loss = loop.epoch(train_loader, epoch)
        train_seconds += time.perf_counter() - started
        dev_result = evaluate(task, model, splits["dev"], protocol, accelerator, progress, f"dev {epoch}",
                              collates["dev"])
        value = dev_result.metrics[primary.name] * (1 if primary.higher_is_better else -1)
        history.append({"epoch": epoch, "train_loss": train_loss, "dev_loss": dev_result.loss,
                        **{f"dev_{k}": v for k, v in dev_result.metrics.items()}})
        log.info("epoch %d: train loss %.4f, dev %s %.4f", epoch, train_loss, primary.name,
                 dev_result.metrics[primary.name])
        if value > best_value:  # ties keep the earlier epoch
            best_value, best_epoch = value, epoch
            best_state = accelerator.unwrap_model(model).trainable_state()

    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        unwrapped.load_state_dict(best_state, strict=False)
    log.info("testing the checkpoint of epoch %d (best dev %s)", best_epoch, primary.name)
    test_result = evaluate(task, model, splits["test"], protocol, accelerator, progress, "test", collates["test"])
    timing |= _timing(len(splits["train"]) * protocol.epochs, train_seconds, test_result, device)
    return TrainResult(test=test_result, best_epoch=best_epoch, dev_history=history, timing=timing,
                       trainable_state=unwrapped.trainable_state(), n_train=len(splits["train"]),
                       n_dev=len(splits["dev"]))


def _accelerator(device: str) -> Accelerator:
    # bf16 autocast only where it pays and is safe: CUDA. CPU runs stay in fp32.
    precision = "bf16" if device == "cuda" else "no"
    if world_size() == 1:
        return Accelerator(cpu=device == "cpu", mixed_precision=precision)
    # DDP with a static graph: parameters that a task never reads (BERT's pooler under a token head) are found
    # in the first step and left out of the all-reduce from then on
    return Accelerator(cpu=device == "cpu", mixed_precision=precision,
                       kwargs_handlers=[DistributedDataParallelKwargs(static_graph=True)])


def _train_loader(rows: list[Example], protocol: TrainingProtocol, generator: torch.Generator, collate: Callable,
                  accelerator: Accelerator) -> Any:
    """Shuffled training batches. On N processes each takes batch_size / N examples of every global batch of
    batch_size (accelerate shards the loader; every process shuffles with the same generator), so one step
    sees the examples a one-process step sees."""
    if accelerator.num_processes == 1:
        return DataLoader(rows, batch_size=protocol.batch_size, shuffle=True, generator=generator,
                          collate_fn=collate)
    size = per_device_batch(protocol.batch_size, accelerator.num_processes)
    loader = DataLoader(rows, batch_size=size, shuffle=True, generator=generator, collate_fn=collate)
    return accelerator.prepare_data_loader(loader)


class _Loop:
    """One epoch of optimisation: forward under autocast, a finite-loss guard, backward, clip, step."""

    def __init__(self, task: SupervisedTask, model: Any, optimizer: Any, scheduler: Any, accelerator: Any,
                 protocol: TrainingProtocol, progress: ProgressReporter):
        self.task, self.model, self.optimizer, self.scheduler = task, model, optimizer, scheduler
        self.accelerator, self.protocol, self.progress = accelerator, protocol, progress
        self.trainable = [p for p in model.parameters() if p.requires_grad]

    def epoch(self, loader: DataLoader, epoch: int) -> float:
        """Train one pass over `loader`; returns the mean training loss per example."""
        self.model.train()
        running, seen = 0.0, 0
        with self.progress.phase(f"epoch {epoch}/{self.protocol.epochs}", len(loader)) as update:
            for step, batch in enumerate(loader, 1):
                batch = send_to_device(batch, self.accelerator.device)
                with self.accelerator.autocast():
                    out = self.task.step(self.model, batch)
                loss = out.loss.detach()
                if self.accelerator.num_processes > 1:  # all processes stop together when one loss is not finite
                    loss = self.accelerator.gather(loss.float().reshape(1)).sum()
                if not torch.isfinite(loss):
                    raise RunFailed(f"loss became {loss.item()} at epoch {epoch} step {step}; "
                                    "the run is stopped (try a lower learning rate)")
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(out.loss)
                if self.protocol.grad_clip:
                    self.accelerator.clip_grad_norm_(self.trainable, self.protocol.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                running += out.loss.item() * len(out.refs)
                seen += len(out.refs)
                update(loss=running / max(seen, 1))
        if self.accelerator.num_processes > 1:  # the mean over every process's examples
            totals = torch.tensor([running, seen], dtype=torch.float64, device=self.accelerator.device)
            running, seen = self.accelerator.reduce(totals, reduction="sum").tolist()
        return running / max(seen, 1)


def _timing(train_examples: int, train_seconds: float, test: EvalResult, device: str) -> dict[str, Any]:
    return {
        "train_s": round(train_seconds, 3),
        "eval_s": round(test.seconds, 3),
        "train_examples_per_s": round(train_examples / max(train_seconds, 1e-9), 2),
        "eval_examples_per_s": round(len(test.ids) / max(test.seconds, 1e-9), 2),
        "peak_mem_mb": peak_memory_mb(device),
    }


def _collates(task: SupervisedTask, model: TaskModel, protocol: TrainingProtocol, splits: dict[str, list[Example]],
              accelerator: Any, progress: ProgressReporter, feature_cache: FeatureCache | None,
              timing: dict[str, Any]) -> dict[str, Callable]:
    """How each split's rows become batches: raw inputs, or precomputed pooled frozen features."""
    if not (model.adaptation.mode == "frozen" and task.pooled_features):
        return {name: partial(task.collate, backbone=model.backbone, protocol=protocol, train=name == "train")
                for name in splits}
    model.backbone.to(accelerator.device)
    started = time.perf_counter()
    collates = {}
    # on several processes the main one computes (and caches) the features first; the others then read the cache
    with accelerator.main_process_first():
        for name, rows in splits.items():
            def compute(rows: list[Example] = rows, name: str = name) -> torch.Tensor:
                return pooled_layer_features(task, model.backbone, rows, protocol, accelerator.device, progress,
                                             name)

            ids = [r.id for r in rows]
            limit = getattr(protocol, f"{name}_limit")
            features = feature_cache.get(name, limit, ids, compute) if feature_cache else compute()
            by_id = dict(zip(ids, features, strict=True))
            collates[name] = partial(_collate_pooled, task, by_id)
    timing["features_s"] = round(time.perf_counter() - started, 3)
    if feature_cache is not None:
        timing["feature_cache"] = "hit" if all(feature_cache.hits.values()) else "miss"
    return collates


def _collate_pooled(task: SupervisedTask, features: dict[str, torch.Tensor], rows: list[Example]) -> dict[str, Any]:
    return task.collate_targets(rows) | {"inputs": {"pooled_layers": torch.stack([features[r.id] for r in rows])}}


def evaluate(task: SupervisedTask, model: torch.nn.Module, examples: list[Example], protocol: TrainingProtocol,
             accelerator: Any, progress: ProgressReporter, label: str, collate: Callable) -> EvalResult:
    """Score every example once, in the split's order. On several processes each scores one contiguous
    shard with the unwrapped model, and the shards are gathered (no padding, so no duplicates)."""
    started = time.perf_counter()
    if accelerator.num_processes == 1:
        ids, preds, refs, loss_sum = _score(task, model, examples, protocol, accelerator, progress, label, collate)
    else:
        ids, preds, refs, loss_sum = _score_sharded(task, model, examples, protocol, accelerator, progress, label,
                                                    collate)
    seconds = time.perf_counter() - started
    metrics = task.compute_metrics(preds, refs)
    return EvalResult(metrics, ids, preds, refs, loss_sum / max(len(refs), 1), seconds)


def _score(task: SupervisedTask, model: torch.nn.Module, examples: list[Example], protocol: TrainingProtocol,
           accelerator: Any, progress: ProgressReporter, label: str,
           collate: Callable) -> tuple[list[str], list[Any], list[Any], float]:
    """(ids, predictions, references, summed loss) of `examples`, in their order."""
    loader = DataLoader(examples, batch_size=protocol.eval_batch_size, shuffle=False, collate_fn=collate)
    model.eval()
    ids: list[str] = []
    preds: list[Any] = []
    refs: list[Any] = []
    loss_sum = 0.0
    with torch.no_grad(), progress.phase(label, len(loader)) as update:
        for batch in loader:
            ids.extend(batch["ids"])
            batch = send_to_device(batch, accelerator.device)
            with accelerator.autocast():
                out = task.step(model, batch)
            loss_sum += out.loss.float().item() * len(out.refs)
            preds.extend(out.preds)
            refs.extend(out.refs)
            update()
    return ids, preds, refs, loss_sum


def _score_sharded(task: SupervisedTask, model: torch.nn.Module, examples: list[Example], protocol: TrainingProtocol,
                   accelerator: Any, progress: ProgressReporter, label: str,
                   collate: Callable) -> tuple[list[str], list[Any], list[Any], float]:
    """`_score` over N processes: process i scores examples [i*n/N, (i+1)*n/N); the shards are gathered
    to every process and put back in the split's order, each example exactly once."""
    unwrapped = accelerator.unwrap_model(model)  # no DDP collectives per forward: shards differ in length
    for buffer in unwrapped.buffers():  # every shard scores with the main process's batch-norm statistics
        if buffer.is_contiguous():  # (an expanded index table is a constant view)
            torch.distributed.broadcast(buffer.data, src=0)
    count, processes, index = len(examples), accelerator.num_processes, accelerator.process_index
    start, end = count * index // processes, count * (index + 1) // processes
    shard = _score(task, unwrapped, examples[start:end], protocol, accelerator, progress, label, collate)
    shards = sorted(gather_object([(start, *shard)]), key=lambda s: s[0])
    ids = [i for s in shards for i in s[1]]
    if ids != [e.id for e in examples]:
        raise RunFailed(f"{label}: the {processes} processes did not score each example exactly once")
    return ids, [p for s in shards for p in s[2]], [r for s in shards for r in s[3]], sum(s[4] for s in shards)


def _param_groups(model: TaskModel, protocol: TrainingProtocol) -> list[dict[str, Any]]:
    """Backbone at lr, head and layer mix at head_lr; no weight decay on biases and norms."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = not name.startswith("backbone.")
        no_decay = param.ndim < 2
        groups.setdefault((is_head, no_decay), []).append(param)
    return [
        {"params": params, "lr": protocol.head_lr if is_head else protocol.lr,
         "weight_decay": 0.0 if no_decay else protocol.weight_decay}
        for (is_head, no_decay), params in groups.items()
    ]


def peak_memory_mb(device: str) -> float:
    if device == "cuda" and torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB; process RSS
