"""`harness validate NAME|FILE`: the checks every task must pass, as a checklist.

The same checks back the project's conformance test for every built-in task, so a plugin author and the
harness hold tasks to one standard:
  spec       the registry accepts it; spec fields filled in; protocols complete; the default backbone fits;
  splits     train/dev/test load and none is empty; ids unique within and across splits (disjoint);
  stable     a second, fresh load gives the same ids in the same order, and the same data fingerprint;
  labels     every reference is one of the task's labels;
  smoke run  a run on a few examples completes (the smoke protocol, cut to `examples` per split);
  repeat     the same seed again gives identical metrics;
  explain    the run's explanation completes.
Runs go to a temporary runs directory, never the user's. Control tasks skip the data checks.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, NothingToExplain, first_line
from harness.protocol import PROTOCOL_NAMES
from harness.task import SPLITS, TASKS

STATIC_CHECKS = ("spec", "splits", "stable", "labels")
RUN_CHECKS = ("smoke run", "repeat", "explain")


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool | None  # None: skipped (an earlier check it depends on failed, or it does not apply)
    detail: str = ""

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "skip"}[self.passed]


def validate(task: str, runs: bool = True, examples: int = 8, device: str = "auto",
             progress: bool = False) -> list[CheckResult]:
    """Every check on the task `task` (a registered name; `api.validate` also takes a task file's path).
    `runs=False` keeps to the checks that train nothing. Unknown names raise UsageError."""
    if task not in TASKS:
        raise TASKS.unknown(task)
    return list(_checks(task, runs, examples, device, progress))


def _checks(name: str, runs: bool, examples: int, device: str, progress: bool) -> Iterator[CheckResult]:
    try:
        cls = TASKS.get(name)
        task = cls()
        _check_spec(task)
    except (HarnessError, AssertionError) as exc:
        yield CheckResult("spec", False, first_line(exc))
        yield from (CheckResult(n, None, "the task does not load") for n in (*STATIC_CHECKS[1:], *RUN_CHECKS))
        return
    yield CheckResult("spec", True, f"{task.spec.modality} / {task.spec.kind}, protocols "
                                    f"{', '.join(PROTOCOL_NAMES)}, default backbone {task.spec.default_backbone}")
    data_ok = True
    if task.spec.modality == "control":
        yield from (CheckResult(n, None, "control task: no data set") for n in STATIC_CHECKS[1:])
    else:
        for check_name, check in (("splits", _check_splits), ("stable", _check_stable), ("labels", _check_labels)):
            result = _attempt(check_name, lambda check=check: check(cls, task))
            data_ok = data_ok and result.passed is not False
            yield result
    if not runs:
        return
    if not data_ok:
        yield from (CheckResult(n, None, "the data checks failed") for n in RUN_CHECKS)
        return
    yield from _run_checks(name, task, examples, device, progress)


def _attempt(name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, check())
    except (HarnessError, AssertionError) as exc:
        return CheckResult(name, False, first_line(exc))
    except Exception as exc:  # a plugin's own code failing in any way is a failed check, named
        return CheckResult(name, False, f"{type(exc).__name__}: {first_line(exc)}")


def _check_spec(task: Any) -> None:
    from harness.backbones.spec import BACKBONES

    spec = task.spec
    missing = [f for f in ("version", "description", "license", "data_sources") if not getattr(spec, f)]
    if missing:
        raise AssertionError(f"the spec leaves {', '.join(missing)} empty")
    if spec.default_protocol not in task.protocols:
        raise AssertionError(f"default protocol '{spec.default_protocol}' is not in its protocols")
    for protocol_name in PROTOCOL_NAMES:
        protocol = task.protocols[protocol_name]
        if getattr(protocol, "epochs", 1) < 1 or getattr(protocol, "batch_size", 1) < 1:
            raise AssertionError(f"protocol '{protocol_name}' trains no epoch or has an empty batch")
    backbone = BACKBONES.get(spec.default_backbone)  # unknown: UsageError with did-you-mean
    if backbone.modality != spec.backbone_kind:
        raise AssertionError(f"default backbone '{spec.default_backbone}' is a {backbone.modality} backbone, "
                             f"the task needs a {spec.backbone_kind} one")


def _splits(task: Any) -> dict[str, Sequence[Any]]:
    from harness.planning import load_split

    return {split: load_split(task, split, None) for split in SPLITS}


def _check_splits(cls: type, task: Any) -> str:
    splits = _splits(task)
    empty = [s for s, rows in splits.items() if not rows]
    if empty:
        raise AssertionError(f"the {' and '.join(empty)} split{'s are' * (len(empty) > 1) or ' is'} empty")
    seen: dict[str, str] = {}
    for split, rows in splits.items():
        for row in rows:
            if row.id in seen:
                where = "twice in " + split if seen[row.id] == split else f"in both {seen[row.id]} and {split}"
                raise AssertionError(f"example id '{row.id}' occurs {where}")
            seen[row.id] = split
    return ", ".join(f"{len(rows)} {split}" for split, rows in splits.items()) + ", ids unique and disjoint"


def _check_stable(cls: type, task: Any) -> str:
    first = {s: [r.id for r in rows] for s, rows in _splits(task).items()}
    fresh = cls()
    again = {s: [r.id for r in rows] for s, rows in _splits(fresh).items()}
    for split in SPLITS:
        if first[split] != again[split]:
            raise AssertionError(f"a second load gives other ids or another order in the {split} split")
    fingerprint = task.data_fingerprint()
    if not fingerprint or fingerprint != task.data_fingerprint() or fingerprint != fresh.data_fingerprint():
        raise AssertionError("the data fingerprint differs between two calls")
    return f"same ids and order on a fresh load; fingerprint {fingerprint[:19]}"


def _check_labels(cls: type, task: Any) -> str:
    from harness.preflight import check_labels

    splits = _splits(task)
    for split, rows in splits.items():
        check_labels(task, split, rows)
    used = {t for rows in splits.values() for r in rows for t in (r.target if isinstance(r.target, list | tuple)
                                                                   else [r.target])}
    unused = [label for label in task.labels if label not in used]
    return f"{len(task.labels)} labels cover the data" + (f" ({len(unused)} never used)" if unused else "")


def validation_protocol(task: Any, examples: int) -> Any:
    """The task's smoke protocol cut to `examples` per split and one epoch (control: a short training)."""
    smoke = task.protocols["smoke"]
    if task.spec.modality == "control":
        return dataclasses.replace(smoke, name="smoke+validate",
                                   total_timesteps=min(smoke.total_timesteps, 64 * examples),
                                   eval_episodes=min(smoke.eval_episodes, 2))
    def cut(limit: int | None) -> int:
        return examples if limit is None else min(limit, examples)
    return smoke.with_changes(name="smoke+validate", epochs=1, train_limit=cut(smoke.train_limit),
                              dev_limit=cut(smoke.dev_limit), test_limit=cut(smoke.test_limit))


def _run_checks(name: str, task: Any, examples: int, device: str, progress: bool) -> Iterator[CheckResult]:
    from harness.execution import run_plans
    from harness.planning import plan_runs
    from harness.preflight import check_plans
    from harness.progress import ProgressReporter
    from harness.store import RunStore
    from harness.training.train import resolve_device

    chosen = resolve_device(device)
    protocol = validation_protocol(task, examples)
    with tempfile.TemporaryDirectory(prefix="harness-validate-") as runs_dir:
        store = RunStore(runs_dir)

        def run(force: bool) -> dict[str, Any]:
            plans = plan_runs(name, protocol=protocol, seeds=[0], deterministic=True)
            check_plans(plans)
            record = run_plans(plans, store, chosen, ProgressReporter(progress), force=force)[0].record
            if record.get("status") != "complete":
                raise AssertionError(f"the run ended {record.get('status')}: {record.get('error')}")
            return record

        records: list[dict[str, Any]] = []
        first = _attempt("smoke run", lambda: _describe(records, run(False)))
        yield first
        if not first.passed:
            yield from (CheckResult(n, None, "the smoke run failed") for n in RUN_CHECKS[1:])
            return
        yield _attempt("repeat", lambda: _same_metrics(records[0], run(True)))
        yield _attempt("explain", lambda: _explained(store, records[0]["run_id"], chosen))


def _describe(records: list[dict[str, Any]], record: dict[str, Any]) -> str:
    records.append(record)
    primary = record["primary_metric"]
    return f"{primary} {record['metrics'][primary]:.4g} after {record['timing']['train_s']:.1f} s of training"


def _same_metrics(first: dict[str, Any], second: dict[str, Any]) -> str:
    a, b = first["metrics"], second["metrics"]
    differing = sorted(k for k in set(a) | set(b) if not _equal(a.get(k), b.get(k)))
    if differing:
        raise AssertionError(f"seed 0 twice gave different {', '.join(differing[:4])} "
                             f"({a.get(differing[0])} vs {b.get(differing[0])})")
    return f"seed 0 twice: {len(a)} metrics identical"


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def _explained(store: Any, run_id: str, device: str) -> str:
    from harness.explain.runner import explain_run

    try:
        block = explain_run(store, run_id, device)
    except NothingToExplain as exc:  # e.g. a tagger that predicts no entity after a few examples: ran, nothing to show
        return f"ran; {first_line(exc)}"
    return f"{block['method']} over {block['n_items']} items in {block['seconds']:.1f} s"
