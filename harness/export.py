"""`harness export`: stored results in the formats other tools read.

- `model-index`: the Hugging Face model-card metadata (`model-index:` YAML, built with huggingface_hub's own
  `EvalResult` / `eval_results_to_model_index`), so a fine-tuned model's card carries its scores: one run's
  test metrics, or for a leaderboard each model's mean over its seeds per task (complete cells only), with
  the 95% interval and the protocol in the metric's args.
- `csv` / `parquet`: one row per complete run (the table reports are built from), for pandas users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.leaderboard import Leaderboard
from harness.store import RunStore, write_atomic
from harness.task import TASKS

FORMATS = ("model-index", "csv", "parquet")
# The Hugging Face task ids of the harness's kinds (the model card's `task.type`).
HF_TASK_TYPES = {"sequence-classification": "text-classification", "token-classification": "token-classification",
                 "image-classification": "image-classification", "audio-classification": "audio-classification",
                 "control": "reinforcement-learning"}


def run_model_index(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The model-index of one complete run: its test metrics on its task."""
    if record.get("status") != "complete":
        raise UsageError(f"run {record['run_id']} is not complete (status {record.get('status')}): nothing to export")
    results = [_result(record["task"], name, value, record["protocol"], {"seed": record["seed"]})
               for name, value in record["metrics"].items() if isinstance(value, int | float)]
    return _model_index(f"{record['backbone']}-{record['adapt']}-{record['task']}", results)


def board_model_index(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model of a leaderboard report as a model-index entry: per complete task, the mean over seeds of the
    primary metric (with its interval) and of each other metric."""
    entries: list[dict[str, Any]] = []
    for model in report["models"]:
        results = []
        for cell in report["cells"]:
            if cell["model"] != model or cell["estimate"] is None or cell["missing_seeds"]:
                continue
            args = {"seeds": cell["seeds"], "interval_95": [cell["low"], cell["high"]], "method": cell["method"]}
            primary = TASKS.get(cell["task"]).spec.primary.name
            results.append(_result(cell["task"], primary, cell["estimate"], report["protocol"], args))
            results += [_result(cell["task"], name, value, report["protocol"], {"seeds": cell["seeds"]})
                        for name, value in cell["secondary"].items() if name != primary]
        if results:
            entries += _model_index(f"{model} / {report['name']}", results)
    if not entries:
        raise UsageError(f"leaderboard {report['name']} has no complete cell to export")
    return entries


def _result(task: str, metric: str, value: float, protocol: str, args: dict[str, Any]) -> Any:
    from huggingface_hub import EvalResult

    spec = TASKS.get(task).spec
    return EvalResult(task_type=HF_TASK_TYPES.get(spec.kind or "", spec.kind or "other"), task_name=spec.kind,
                      dataset_type=f"harness/{spec.name}", dataset_name=f"{spec.name} v{spec.version}",
                      dataset_split="test", metric_type=metric, metric_value=round(float(value), 6),
                      metric_name=metric, metric_args={"protocol": protocol} | args,
                      verified=False)


def _model_index(name: str, results: list[Any]) -> list[dict[str, Any]]:
    from huggingface_hub.repocard_data import eval_results_to_model_index

    return eval_results_to_model_index(name, results)


def model_index_yaml(entries: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump({"model-index": entries}, sort_keys=False, allow_unicode=True)


def runs_frame(store: RunStore, board: Leaderboard | None = None) -> Any:
    """Every complete run as one row (a leaderboard's cells only, when given)."""
    from harness.report.collect import model_label, runs_table

    frame = runs_table(store)
    if board is not None and not frame.empty:
        wanted = {(task, m.label) for task, m in board.pairs()}
        keep = [(t, model_label(b, a)) in wanted and p == board.protocol and s in board.seeds
                for t, b, a, p, s in zip(frame["task"], frame["backbone"], frame["adapt"], frame["protocol"],
                                         frame["seed"], strict=True)]
        frame = frame[keep]
    return frame.sort_values(["task", "backbone", "adapt", "protocol", "seed"]).reset_index(drop=True)


def table_bytes(frame: Any, fmt: str) -> bytes:
    """The runs table as CSV or Parquet."""
    if fmt != "parquet":
        return frame.to_csv(index=False).encode()
    try:
        return frame.to_parquet(index=False)
    except ImportError:
        raise UsageError("--format parquet needs pyarrow: pip install 'harness[datasets]' (or pyarrow)") from None


def write_export(out: Path, data: bytes | str) -> None:
    """Atomically (the store's writer): a reader never sees half a file."""
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
