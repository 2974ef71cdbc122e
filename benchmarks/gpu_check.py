"""GPU check: one epoch of the standard NER and Fashion-MNIST recipes in bf16, on one GPU and on every GPU of
the machine (DDP, `harness run --devices N`), with training throughput, peak GPU memory and model FLOP
utilisation (MFU) in one table.

    python benchmarks/gpu_check.py [--fashion-mnist-dir DIR] [--budget-s 270]

Each run goes through the harness API (`api.run(..., device="cuda", devices=N)`) on a protocol derived from
the task's `standard` one: one epoch, and for Fashion-MNIST a capped training split (see CASES), so the whole
check runs unattended in under 5 minutes; runs that would start after --budget-s are left out and said so.
The table is printed and written to benchmarks/results/gpu_check-<gpu>.txt. Without CUDA it prints
"no CUDA device: nothing to check" and exits 0.

FLOPs per training example: for the text model 6 x parameters x tokens (2 forward and 4 backward per
parameter and token; tokens: the mean non-padding tokens of a training example); for the image model one
forward pass counted by torch.utils.flop_counter.FlopCounterMode, x 3 for forward and backward.
MFU = train examples/s x FLOPs per example / (GPUs x the GPU's peak dense bf16 FLOP/s, from PEAK_BF16).
Train examples/s is the global rate: the whole epoch's examples over the main process's epoch time.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NO_CUDA = "no CUDA device: nothing to check"
# peak dense (no sparsity) bf16 tensor-core FLOP/s by GPU name, first match wins
PEAK_BF16 = (("H200", 989e12), ("H100 PCIE", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12),
             ("L4", 121e12))
# (task, changes to its standard protocol): one epoch; Fashion-MNIST's 55k training images capped, since
# its images are resized to 224 px on the CPU, in the training process
CASES = (
    ("ner", {"name": "standard-1epoch", "epochs": 1}),
    ("fashion-mnist", {"name": "standard-1epoch-8k", "epochs": 1, "train_limit": 8192, "dev_limit": 1024,
                       "test_limit": 2048}),
    ("ner", {"name": "standard-1epoch+compile", "epochs": 1, "compile": True}),  # last: the budget may cut it
)


def peak_flops(gpu: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16 if key in gpu.upper()), None)


def flops_per_example(plan: Any) -> float:
    """Training FLOPs of one example of this plan's task (see the module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from harness.training.model import build_task_model

    backbone = plan.backbone.build(plan.asset)
    model = build_task_model(plan.task, plan.backbone, backbone, plan.protocol, plan.adaptation).eval()
    rows = plan.task.load_split("train", plan.protocol.train_limit)
    if plan.modality == "text":
        params = sum(p.numel() for p in model.parameters())
        tokens = 0
        for start in range(0, len(rows), 256):
            batch = plan.task.collate(rows[start:start + 256], model.backbone, plan.protocol, train=False)
            tokens += int(batch["inputs"]["attention_mask"].sum())
        return 6.0 * params * tokens / len(rows)
    batch = plan.task.collate(rows[:1], model.backbone, plan.protocol, train=False)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch["inputs"])
    return 3.0 * counter.get_total_flops()


def check_case(task: str, changes: dict[str, Any], gpus: list[int], runs: Path, data_dir: str | None,
               deadline: float) -> list[dict[str, Any]]:
    from harness import api

    standard = api.plan_runs(task, protocol="standard", data_dir=data_dir)[0].protocol
    protocol = standard.with_changes(**changes)
    (plan,) = api.plan_runs(task, protocol=protocol, data_dir=data_dir)
    flops = flops_per_example(plan)
    rows = []
    for devices in gpus:
        row: dict[str, Any] = {"task": task, "protocol": protocol.name, "gpus": devices}
        if time.monotonic() > deadline:
            rows.append(row | {"note": "left out: the time budget is spent"})
            continue
        try:
            (outcome,) = api.run(task, protocol=protocol, device="cuda", devices=devices, progress=False,
                                 runs_dir=runs / f"gpus{devices}", data_dir=data_dir)
        except api.HarnessError as exc:
            rows.append(row | {"note": f"failed: {exc}"})
            continue
        record = outcome.record
        rows.append(row | {"train": record["n_train"], "train_s": record["timing"]["train_s"],
                           "per_s": record["timing"]["train_examples_per_s"],
                           "peak_mb": record["timing"]["peak_mem_mb"], "flops": flops,
                           "metric": f"{record['primary_metric']} {record['primary']:.4f}",
                           "settings": _settings(record.get("execution", {}))})
    return rows


def _settings(execution: dict[str, Any]) -> str:
    """The device settings a run recorded, in a few characters (precision, batching, CUDA options)."""
    flags = [name for name in ("tf32", "fused_adamw", "pin_memory", "channels_last", "compile") if execution.get(name)]
    return " ".join([str(execution.get("precision")), str(execution.get("batching")),
                     f"workers={execution.get('loader_workers')}", *flags])


def render(gpu: str, count: int, rows: list[dict[str, Any]]) -> str:
    peak = peak_flops(gpu)
    lines = [f"GPU check: {count} x {gpu}, bf16, one epoch per run "
             f"(peak dense bf16 per GPU: {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'})",
             f"{'task':<14}{'protocol':<21}{'GPUs':>5}{'train ex':>10}{'train s':>9}{'ex/s':>10}"
             f"{'peak MB':>10}{'GFLOP/ex':>10}{'MFU':>8}  test metric  [settings]"]
    for r in rows:
        head = f"{r['task']:<14}{r['protocol']:<21}{r['gpus']:>5}"
        if "note" in r:
            lines.append(f"{head}  {r['note']}")
            continue
        mfu = f"{r['per_s'] * r['flops'] / (r['gpus'] * peak):.1%}" if peak else "unknown"
        lines.append(f"{head}{r['train']:>10}{r['train_s']:>9.1f}{r['per_s']:>10.1f}{r['peak_mb']:>10.0f}"
                     f"{r['flops'] / 1e9:>10.2f}{mfu:>8}  {r['metric']}  [{r['settings']}]")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fashion-mnist-dir", help="the Fashion-MNIST IDX files, when not installed system-wide")
    parser.add_argument("--budget-s", type=float, default=270.0, help="start no run after this many seconds")
    opts = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    deadline = time.monotonic() + opts.budget_s
    gpu, count = torch.cuda.get_device_name(0), torch.cuda.device_count()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for task, changes in CASES:
            data_dir = opts.fashion_mnist_dir if task == "fashion-mnist" else None
            rows += check_case(task, changes, sorted({1, count}), Path(tmp), data_dir, deadline)
    table = render(gpu, count, rows)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"gpu_check-{re.sub(r'[^A-Za-z0-9]+', '-', gpu).strip('-').lower()}.txt"
    out.write_text(table + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 1 if any(r.get("note", "").startswith("failed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
