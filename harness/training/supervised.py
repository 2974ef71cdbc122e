"""The one supervised loop every supervised task runs through, whatever its modality.

The task supplies data (load_split), batching (collate) and the loss/prediction step; the backbone
adapter supplies features. Nothing here knows about text, images or audio.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object
from torch.utils.data import DataLoader

from harness import tracking
from harness.errors import RunFailed
from harness.progress import ProgressReporter
from harness.protocol import TrainingProtocol
from harness.task import Example, SupervisedTask
from harness.training.batching import LengthGroupedBatchSampler, length_order
from harness.training.devices import DeviceSettings, device_settings
from harness.training.distributed import per_device_batch, world_size
from harness.training.feature_cache import FeatureCache, pooled_layer_features
from harness.training.memory import peak_memory_mb
from harness.training.model import TaskModel
from harness.training.schedule import linear_warmup_decay
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
    timing: dict[str, Any] = field(default_factory=dict)  # seconds, throughput, peak memory: numbers only
    execution: dict[str, Any] = field(default_factory=dict)  # how it ran: precision, batching, device settings
    trainable_state: dict[str, torch.Tensor] = field(default_factory=dict)
    n_train: int = 0
    n_dev: int = 0


def train_and_evaluate(task: SupervisedTask, model: TaskModel, protocol: TrainingProtocol, seed: int, device: str,
                       progress: ProgressReporter, deterministic: bool = False,
                       feature_cache: FeatureCache | None = None, final_split: str = "test") -> TrainResult:
    """Train on train, pick the best epoch on dev, test it. With a frozen backbone and a task whose
    head pools (classification), features are computed once per split (through `feature_cache` when
    given) and the loop trains the head on them; the numbers are the same either way. `final_split` "dev"
    (a tuning trial) scores the best epoch on dev and never loads the test split."""
    settings = device_settings(device, protocol, task.spec.modality, _trains_on_pooled_features(task, model))
    with settings.matmul_precision():
        return _train_and_evaluate(task, model, protocol, seed, device, settings, progress, deterministic,
                                   feature_cache, final_split)


def _train_and_evaluate(task: SupervisedTask, model: TaskModel, protocol: TrainingProtocol, seed: int, device: str,
                        settings: DeviceSettings, progress: ProgressReporter, deterministic: bool,
                        feature_cache: FeatureCache | None, final_split: str) -> TrainResult:
    names = ("train", "dev") if final_split == "dev" else ("train", "dev", "test")
    splits = {name: task.load_split(name, getattr(protocol, f"{name}_limit")) for name in names}
    log.info("data: %s", ", ".join(f"{len(rows)} {name}" for name, rows in splits.items()) + " examples")
    accelerator = _accelerator(device)
    model = settings.place(model)
    if protocol.compile:
        model.backbone.compile()  # in place: parameter names, and so saved weights, stay the same
    timing: dict[str, Any] = {}
    execution: dict[str, Any] = settings.describe() | {"compile": protocol.compile}
    collates = _collates(task, model, protocol, splits, accelerator, progress, feature_cache, timing, execution)
    lengths = _input_lengths(task, model, protocol, splits, execution)
    # seeded after the features are computed or read from the cache: training draws the same random numbers
    # whether or not computing features drew some (audio feature extraction may dither)
    generator = seed_everything(seed, deterministic)
    train_loader = _train_loader(splits["train"], protocol, generator, collates["train"], accelerator,
                                 lengths["train"], settings)
    optimizer = torch.optim.AdamW(_param_groups(model, protocol), fused=True if settings.fused_adamw else None)
    total_steps = max(1, protocol.epochs * len(train_loader))
    scheduler = linear_warmup_decay(optimizer, int(protocol.warmup_ratio * total_steps), total_steps)
    if accelerator.num_processes > 1:
        model, optimizer = accelerator.prepare(model, optimizer)  # DDP
    else:  # one process: accelerate's wrappers would only add work to every step (the numbers are the same)
        model = model.to(accelerator.device)
    loop = _Loop(task, model, optimizer, scheduler, accelerator, protocol, progress, settings)
    evaluator = _Evaluator(task, protocol, accelerator, progress, settings)

    best_value, best_epoch, best_state = -math.inf, 0, None
    history: list[dict[str, float]] = []
    train_seconds, primary = 0.0, task.spec.primary
    for epoch in range(1, protocol.epochs + 1):
        started = time.perf_counter()
        train_loss = loop.epoch(train_loader, epoch)
        train_seconds += time.perf_counter() - started
        dev_result = evaluator(model, splits["dev"], f"dev {epoch}", collates["dev"], lengths["dev"])
        value = dev_result.metrics[primary.name] * (1 if primary.higher_is_better else -1)
        history.append({"epoch": epoch, "train_loss": train_loss, "dev_loss": dev_result.loss,
                        **{f"dev_{k}": v for k, v in dev_result.metrics.items()}})
        log.info("epoch %d: train loss %.4f, dev %s %.4f", epoch, train_loss, primary.name,
                 dev_result.metrics[primary.name])
        if (trackers := tracking.current()) is not None:
            trackers.log({"epoch": epoch, "train/epoch_loss": train_loss, "dev/loss": dev_result.loss}
                         | {f"dev/{k}": v for k, v in dev_result.metrics.items()}, step=epoch * len(train_loader))
        if value > best_value:  # ties keep the earlier epoch
            best_value, best_epoch = value, epoch
            best_state = accelerator.unwrap_model(model).trainable_state()

    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        unwrapped.load_state_dict(best_state, strict=False)
    log.info("%s the checkpoint of epoch %d (best dev %s)", "testing" if final_split == "test" else "scoring on dev",
             best_epoch, primary.name)
    test_result = evaluator(model, splits[final_split], final_split, collates[final_split], lengths[final_split])
    timing |= _timing(len(splits["train"]) * protocol.epochs, train_seconds, test_result, device)
    return TrainResult(test=test_result, best_epoch=best_epoch, dev_history=history, timing=timing,
                       execution=execution, trainable_state=unwrapped.trainable_state(), n_train=len(splits["train"]),
                       n_dev=len(splits["dev"]))


def _trains_on_pooled_features(task: SupervisedTask, model: TaskModel) -> bool:
    """A frozen backbone under a pooling head: the head trains on each split's features, computed once."""
    return model.adaptation.mode == "frozen" and task.pooled_features


def _accelerator(device: str) -> Accelerator:
    """Process placement, DDP and gradient clipping through accelerate; autocast is `settings.autocast`."""
    if world_size() == 1:
        return Accelerator(cpu=device == "cpu")
    # DDP with a static graph: parameters that a task never reads (BERT's pooler under a token head) are found
    # in the first step and left out of the all-reduce from then on
    return Accelerator(cpu=device == "cpu", kwargs_handlers=[DistributedDataParallelKwargs(static_graph=True)])


def _input_lengths(task: SupervisedTask, model: TaskModel, protocol: TrainingProtocol,
                   splits: dict[str, list[Example]], execution: dict[str, Any]) -> dict[str, list[int] | None]:
    """Each split's row lengths when batches should group by length: the task reports lengths, the
    protocol asks for grouping, and the rows are not cached pooled features (which all have one position)."""
    lengths: dict[str, list[int] | None] = dict.fromkeys(splits)
    if protocol.batching == "length-grouped" and not _trains_on_pooled_features(task, model):
        lengths = {name: task.input_lengths(rows, model.backbone, protocol) for name, rows in splits.items()}
    execution["batching"] = "length-grouped" if lengths["train"] is not None else "random"
    return lengths


def _train_loader(rows: list[Example], protocol: TrainingProtocol, generator: torch.Generator, collate: Callable,
                  accelerator: Accelerator, lengths: list[int] | None, settings: DeviceSettings) -> Any:
    """Training batches of the protocol's (global) batch size: grouped by length when `lengths` are given,
    shuffled otherwise. On N processes each takes batch_size / N examples of every global batch (every
    process draws the same order from the same generator), so one step sees the examples a one-process
    step sees."""
    processes = accelerator.num_processes
    if lengths is not None:
        per_device_batch(protocol.batch_size, processes)  # the same check as for random batches
        sampler = LengthGroupedBatchSampler(lengths, protocol.batch_size, generator, accelerator.process_index,
                                            processes)
        return DataLoader(rows, batch_sampler=sampler, collate_fn=collate, **settings.loader_options())
    if processes == 1:
        return DataLoader(rows, batch_size=protocol.batch_size, shuffle=True, generator=generator,
                          collate_fn=collate, **settings.loader_options())
    size = per_device_batch(protocol.batch_size, processes)
    loader = DataLoader(rows, batch_size=size, shuffle=True, generator=generator, collate_fn=collate,
                        **settings.loader_options())
    return accelerator.prepare_data_loader(loader)


class _Loop:
    """One epoch of optimisation: forward under autocast, a finite-loss guard, backward, clip, step. A training
    step builds no predictions (`task.loss`), and reads the loss back to the host only every `sync_every` steps
    (every step on CPU, where reading it costs nothing)."""

    def __init__(self, task: SupervisedTask, model: Any, optimizer: Any, scheduler: Any, accelerator: Any,
                 protocol: TrainingProtocol, progress: ProgressReporter, settings: DeviceSettings):
        self.task, self.model, self.optimizer, self.scheduler = task, model, optimizer, scheduler
        self.accelerator, self.protocol, self.progress, self.settings = accelerator, protocol, progress, settings
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.distributed = accelerator.num_processes > 1

    def epoch(self, loader: DataLoader, epoch: int) -> float:
        """Train one pass over `loader`; returns the mean training loss per example."""
        self.model.train()
        device = self.accelerator.device
        running = torch.zeros((), dtype=torch.float64, device=device)
        seen, reported, sync_every = 0, 0, self.settings.sync_every
        trackers, logged_loss, logged_seen = tracking.current(), 0.0, 0
        with self.settings.threads_for_loop(), self.progress.phase(f"epoch {epoch}/{self.protocol.epochs}",
                                                                  len(loader)) as update:
            for step, batch in enumerate(loader, 1):
                batch = self.settings.to_device(batch, device)
                with self.settings.autocast(self.accelerator.device):
                    loss = self.task.loss(self.model, batch)
                self.optimizer.zero_grad(set_to_none=True)
                if self.distributed:
                    self.accelerator.backward(loss)
                    if self.protocol.grad_clip:
                        self.accelerator.clip_grad_norm_(self.trainable, self.protocol.grad_clip)
                else:
                    loss.backward()
                    if self.protocol.grad_clip:
                        torch.nn.utils.clip_grad_norm_(self.trainable, self.protocol.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                count = len(batch["ids"])
                running += loss.detach().double() * count
                seen += count
                if step % sync_every == 0 or step == len(loader):
                    self._check_finite(running, epoch, step)
                    total = running.item()
                    update(advance=step - reported, loss=total / max(seen, 1))
                    if trackers is not None:  # the mean loss of the steps since the last report
                        trackers.log({"train/loss": (total - logged_loss) / max(seen - logged_seen, 1),
                                      "train/lr": self.scheduler.get_last_lr()[0]},
                                     step=(epoch - 1) * len(loader) + step)
                        logged_loss, logged_seen = total, seen
                    reported = step
        totals = torch.stack([running, torch.tensor(float(seen), dtype=torch.float64, device=device)])
        if self.accelerator.num_processes > 1:  # the mean over every process's examples
            totals = self.accelerator.reduce(totals, reduction="sum")
        running_sum, seen_sum = totals.tolist()
        return running_sum / max(seen_sum, 1)

    def _check_finite(self, running: torch.Tensor, epoch: int, step: int) -> None:
        """Stop the run once the summed loss is not finite; all processes stop together."""
        total = running.float().reshape(1)
        if self.accelerator.num_processes > 1:
            total = self.accelerator.gather(total).sum()
        if not torch.isfinite(total).all():
            where = f"step {step}" if self.settings.sync_every == 1 else f"by step {step}"
            raise RunFailed(f"loss became {total.sum().item()} at epoch {epoch} {where}; "
                            "the run is stopped (try a lower learning rate)")


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
              timing: dict[str, Any], execution: dict[str, Any]) -> dict[str, Callable]:
    """How each split's rows become batches: raw inputs, or precomputed pooled frozen features."""
    if not _trains_on_pooled_features(task, model):
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
            if len(features) != len(ids):
                raise RuntimeError(f"{len(features)} {name} features for {len(ids)} examples")
            collates[name] = partial(_collate_pooled, task, features, {id_: i for i, id_ in enumerate(ids)})
    timing["features_s"] = round(time.perf_counter() - started, 3)
    if feature_cache is not None:
        execution["feature_cache"] = "hit" if all(feature_cache.hits.values()) else "miss"
        # what each split's features cost to compute, here or when they were cached: reports charge the train
        # split's to training and the test split's to evaluation, so a run on cached features is not free
        timing |= {f"features_compute_{name}_s": feature_cache.compute_seconds.get(name) for name in splits}
    return collates


def _collate_pooled(task: SupervisedTask, features: torch.Tensor, position: dict[str, int],
                    rows: list[Example]) -> dict[str, Any]:
    """A batch of cached features: one indexing of the split's [examples, layers, dim] tensor."""
    index = torch.tensor([position[r.id] for r in rows], dtype=torch.long)
    return task.collate_targets(rows) | {"inputs": {"pooled_layers": features.index_select(0, index)}}


class _Evaluator:
    """Scores every example once and returns results in the split's order. Rows of known lengths are batched
    longest first (little padding) and put back in order. Under `torch.inference_mode`. On several processes
    each scores one contiguous shard with the unwrapped model, and the shards are gathered (no padding, so
    no duplicates)."""

    def __init__(self, task: SupervisedTask, protocol: TrainingProtocol, accelerator: Any,
                 progress: ProgressReporter, settings: DeviceSettings):
        self.task, self.protocol, self.accelerator = task, protocol, accelerator
        self.progress, self.settings = progress, settings

    def __call__(self, model: torch.nn.Module, examples: list[Example], label: str, collate: Callable,
                 lengths: list[int] | None = None) -> EvalResult:
        started = time.perf_counter()
        with self.settings.threads_for_loop():
            if self.accelerator.num_processes == 1:
                ids, preds, refs, loss_sum = self._score(model, examples, label, collate, lengths)
            else:
                ids, preds, refs, loss_sum = self._score_sharded(model, examples, label, collate, lengths)
            seconds = time.perf_counter() - started
            metrics = self.task.compute_metrics(preds, refs)
        return EvalResult(metrics, ids, preds, refs, loss_sum / max(len(refs), 1), seconds)

    def _score(self, model: torch.nn.Module, examples: list[Example], label: str, collate: Callable,
               lengths: list[int] | None) -> tuple[list[str], list[Any], list[Any], float]:
        """(ids, predictions, references, summed loss) of `examples`, in their order."""
        order = length_order(lengths) if lengths is not None else list(range(len(examples)))
        loader = DataLoader([examples[i] for i in order], batch_size=self.protocol.eval_batch_size, shuffle=False,
                            collate_fn=collate, **self.settings.loader_options())
        model.eval()
        ids: list[str] = []
        preds: list[Any] = []
        refs: list[Any] = []
        loss_sum = 0.0
        with torch.inference_mode(), self.progress.phase(label, len(loader)) as update:
            for batch in loader:
                ids.extend(batch["ids"])
                batch = self.settings.to_device(batch, self.accelerator.device)
                with self.settings.autocast(self.accelerator.device):
                    out = self.task.step(model, batch)
                loss_sum += out.loss.float().item() * len(out.refs)
                preds.extend(out.preds)
                refs.extend(out.refs)
                update()
        back = sorted(range(len(order)), key=order.__getitem__)  # position of each original row in `order`
        return [ids[i] for i in back], [preds[i] for i in back], [refs[i] for i in back], loss_sum

    def _score_sharded(self, model: torch.nn.Module, examples: list[Example], label: str, collate: Callable,
                       lengths: list[int] | None) -> tuple[list[str], list[Any], list[Any], float]:
        """`_score` over N processes: process i scores examples [i*n/N, (i+1)*n/N); the shards are gathered
        to every process and put back in the split's order, each example exactly once."""
        unwrapped = self.accelerator.unwrap_model(model)  # no DDP collectives per forward: shards differ in length
        for buffer in unwrapped.buffers():  # every shard scores with the main process's batch-norm statistics
            if buffer.is_contiguous():  # (an expanded index table is a constant view)
                torch.distributed.broadcast(buffer.data, src=0)
        count, processes, index = len(examples), self.accelerator.num_processes, self.accelerator.process_index
        start, end = count * index // processes, count * (index + 1) // processes
        shard = self._score(unwrapped, examples[start:end], label, collate,
                            lengths[start:end] if lengths is not None else None)
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
