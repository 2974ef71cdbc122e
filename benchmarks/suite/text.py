"""Text contenders outside the harness: Hugging Face `Trainer` and a plain PyTorch loop.

Both run the harness task's own recipe: its train/test rows (task API), its protocol (epochs, batch size,
backbone lr and head lr as AdamW parameter groups, weight decay off for biases and norms, linear warm-up,
gradient clipping, max_length), the same packaged MiniLM, and are scored with the task's own metric code
(NER: first sub-word labelling, words cut off by max_length predicted 'O'). Differences that remain: the
model is transformers' `AutoModelFor...Classification` (sequence classification pools BERT's [CLS] through
its pooler, the harness mean-pools), and the model of the last epoch is tested (the harness tests the
epoch that was best on dev; `quick` sentiment has one epoch, so there it is the same).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    get_linear_schedule_with_warmup,
    set_seed,
)
from transformers.utils import logging as hf_logging

from suite.context import Measurement, RunContext
from suite.harness_cli import protocol_name
from suite.labels import first_subword_labels, word_tags


@dataclass
class TextJob:
    """Everything both contenders share: task, recipe, tokenised rows, model, collator, device."""

    task: Any
    protocol: Any
    rows: dict[str, list[Any]]
    features: dict[str, list[dict[str, Any]]]
    word_ids: dict[str, list[list[int | None]]]  # per row, for token tasks (empty lists otherwise)
    tokenizer: Any
    model: torch.nn.Module
    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]
    device: str

    @property
    def tokens(self) -> bool:
        return self.task.kind == "token-classification"


def backbone_path(name: str = "minilm") -> str:
    """The packaged copy of the harness's text backbone (the same weights the harness loads offline)."""
    from harness.backbones.spec import resolve_backbone

    return str(resolve_backbone(name, "text").resolve().path)


def encode(task: Any, rows: list[Any], tokenizer: Any, max_length: int) -> tuple[list[dict], list[list]]:
    """Tokenised rows (not padded) with their labels; token tasks label each word's first sub-word."""
    tokens = task.kind == "token-classification"
    index = {name: i for i, name in enumerate(task.label_names)}
    encoded = tokenizer([r.input for r in rows], is_split_into_words=tokens, truncation=True, max_length=max_length)
    features, word_ids = [], []
    for i, row in enumerate(rows):
        item = {"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i]}
        if tokens:
            words = encoded.word_ids(i)
            item["labels"] = first_subword_labels(words, [index[t] for t in row.target])
            word_ids.append(words)
        else:
            item["labels"] = index[row.target]
            word_ids.append([])
        features.append(item)
    return features, word_ids


def prepare(ctx: RunContext) -> TextJob:
    """Load the task's rows and the packaged model, tokenise, seed: all before any timing starts."""
    from harness.task import get_task

    hf_logging.set_verbosity_error()  # "newly initialized classifier" warnings are expected
    task = get_task(ctx.options["task"])
    protocol = task.protocols[protocol_name(ctx)]
    rows = {s: task.load_split(s, getattr(protocol, f"{s}_limit")) for s in ("train", "test")}
    path = backbone_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    max_length = int(protocol.inputs.get("max_length", 128))
    encoded = {s: encode(task, r, tokenizer, max_length) for s, r in rows.items()}
    set_seed(ctx.seed)  # the head's initialisation and dropout, as the harness seeds before building its model
    labels = list(task.label_names)
    tokens = task.kind == "token-classification"
    auto = AutoModelForTokenClassification if tokens else AutoModelForSequenceClassification
    model = auto.from_pretrained(path, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                 label2id={n: i for i, n in enumerate(labels)})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    collate = DataCollatorForTokenClassification(tokenizer) if tokens else DataCollatorWithPadding(tokenizer)
    return TextJob(task, protocol, rows, {s: e[0] for s, e in encoded.items()}, {s: e[1] for s, e in encoded.items()},
                   tokenizer, model.to(device), collate, device)


def param_groups(model: torch.nn.Module, protocol: Any) -> list[dict[str, Any]]:
    """Backbone at lr, head at head_lr; no weight decay on biases and norms (the harness's groups)."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((not name.startswith(prefix), param.ndim < 2), []).append(param)
    return [{"params": params, "lr": protocol.head_lr if head else protocol.lr,
             "weight_decay": 0.0 if no_decay else protocol.weight_decay}
            for (head, no_decay), params in groups.items()]


def optimiser(model: torch.nn.Module, protocol: Any, train_rows: int) -> tuple[Any, Any]:
    """AdamW over the parameter groups and the linear schedule with warm-up over every step of the run."""
    total = max(1, protocol.epochs * math.ceil(train_rows / protocol.batch_size))
    optimizer = torch.optim.AdamW(param_groups(model, protocol))
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(protocol.warmup_ratio * total), total)


def autocast(device: str) -> Any:
    """bf16 autocast on CUDA, none on CPU: what the harness's precision 'auto' does."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)


@torch.no_grad()
def predict(job: TextJob, split: str = "test") -> list[torch.Tensor]:
    """Logits per row (token tasks: one row per real token), batches of the protocol's eval size."""
    job.model.eval()
    features, size, out = job.features[split], job.protocol.eval_batch_size, []
    for start in range(0, len(features), size):
        chunk = features[start:start + size]
        batch = job.collate([{k: v for k, v in f.items() if k != "labels"} for f in chunk])
        with autocast(job.device):
            logits = job.model(input_ids=batch["input_ids"].to(job.device),
                               attention_mask=batch["attention_mask"].to(job.device)).logits.float().cpu()
        for i, feature in enumerate(chunk):
            out.append(logits[i, :len(feature["input_ids"])] if job.tokens else logits[i])
    return out


def score(job: TextJob, logits: list[torch.Tensor], split: str = "test") -> dict[str, float]:
    """The task's own metrics over predictions in the harness's format."""
    labels, rows = job.task.label_names, job.rows[split]
    if job.tokens:
        preds = [word_tags(lg.argmax(-1).tolist(), wids, len(row.target), labels)
                 for lg, wids, row in zip(logits, job.word_ids[split], rows, strict=True)]
        return job.task.compute_metrics(preds, [list(r.target) for r in rows])
    preds = [{"label": labels[int(p.argmax())], "probs": [round(v, 6) for v in p.tolist()]}
             for p in (lg.softmax(-1) for lg in logits)]
    return job.task.compute_metrics(preds, [r.target for r in rows])


def run_trainer(ctx: RunContext) -> Measurement:
    """transformers.Trainer with TrainingArguments defaults, except what the recipe fixes; no evaluation,
    logging, trackers or checkpoints during training. options["sampling"]: 'random' or 'group_by_length'."""
    job = prepare(ctx)
    protocol = job.protocol
    args = TrainingArguments(
        output_dir=str(ctx.workdir / "trainer"), per_device_train_batch_size=protocol.batch_size,
        num_train_epochs=protocol.epochs, max_grad_norm=protocol.grad_clip, seed=ctx.seed,
        train_sampling_strategy=ctx.options.get("sampling", "random"), eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, use_cpu=job.device == "cpu",
        bf16=job.device == "cuda")
    trainer = Trainer(model=job.model, args=args, train_dataset=job.features["train"], data_collator=job.collate,
                      processing_class=job.tokenizer,
                      optimizers=optimiser(job.model, protocol, len(job.features["train"])))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return Measurement(seconds, score(job, predict(job)), extra=job_facts(job, ctx))


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> Iterable[list[int]]:
    """The harness's training batches: its length-grouped batch sampler on a generator seeded as the run's."""
    from harness.training.batching import LengthGroupedBatchSampler

    return LengthGroupedBatchSampler(lengths, batch_size, torch.Generator().manual_seed(seed))


def train_loop(job: TextJob, batches: Iterable[list[int]], optimizer: Any, scheduler: Any) -> None:
    """Plain PyTorch: forward (the model's own loss), backward, clip, step. `batches` is iterated once
    per epoch (a sampler draws a fresh order each time)."""
    features, params = job.features["train"], [p for p in job.model.parameters() if p.requires_grad]
    job.model.train()
    for _ in range(job.protocol.epochs):
        for indices in batches:
            batch = {k: v.to(job.device) for k, v in job.collate([features[i] for i in indices]).items()}
            with autocast(job.device):
                loss = job.model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if job.protocol.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, job.protocol.grad_clip)
            optimizer.step()
            scheduler.step()


def run_loop(ctx: RunContext) -> Measurement:
    """The plain loop on the harness's length-grouped batches (lengths: tokens per row after truncation)."""
    job = prepare(ctx)
    lengths = [len(f["input_ids"]) for f in job.features["train"]]
    batches = length_grouped_batches(lengths, job.protocol.batch_size, ctx.seed)
    optimizer, scheduler = optimiser(job.model, job.protocol, len(lengths))
    started = time.perf_counter()
    train_loop(job, batches, optimizer, scheduler)
    seconds = time.perf_counter() - started
    return Measurement(seconds, score(job, predict(job)), extra=job_facts(job, ctx))


def job_facts(job: TextJob, ctx: RunContext) -> dict[str, Any]:
    lengths = [len(f["input_ids"]) for f in job.features["train"]]
    return {"device": job.device, "protocol": job.protocol.name, "train_rows": len(lengths),
            "test_rows": len(job.rows["test"]), "train_tokens": sum(lengths), "torch_threads": torch.get_num_threads(),
            "model_class": type(job.model).__name__}
