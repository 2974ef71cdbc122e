"""Explain a stored run: rebuild its trained model from the run record and weights (rebuild.py), let the
task's explainer (methods.py) attribute a fixed, seeded sample of test examples or states (sampling.py),
measure faithfulness and the randomisation check, summarise, and store it all beside the run.

Storage: `<run>/explanations/` (explanation.json with every item's attributions and numbers, PNG
visuals), swapped in whole; then result.json gains an `explanation` block (method, settings, cost,
faithfulness with intervals, short highlights). The run's metrics, predictions and weights are never
touched: the model is rebuilt from them, explained, and thrown away.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import NothingToExplain, UsageError
from harness.explain.base import Explainer, ExplainSettings, settings_for
from harness.explain.faithfulness import example_faithfulness, rank_correlation, summarise
from harness.explain.methods import choose_explainer
from harness.explain.randomise import randomised_policy, randomised_task_model
from harness.explain.rebuild import rebuild_agent, rebuild_task_model
from harness.explain.sampling import SAMPLE_SALT, sample_examples, sample_states
from harness.explain.storage import DOCUMENT, FOLDER
from harness.explain.summary import highlights
from harness.metrics import iob2_entities
from harness.planning import RunPlan, plan_for_record
from harness.progress import ProgressReporter
from harness.store import RunStore, write_json_atomic

log = logging.getLogger("harness")


@dataclass
class Subject:
    """What one explanation works on: the explainer, the trained model, its randomised copy (the sanity
    check), the sampled examples or states, and how the copy was randomised (in words, for the record)."""

    explainer: Explainer
    model: Any
    randomised: Any
    examples: list[Any]
    randomisation: str


def explain_run(store: RunStore, run_id: str, device: str = "cpu", data_dir: str | None = None,
                force: bool = False, progress: ProgressReporter | None = None) -> dict[str, Any]:
    """Explain one complete run (or return its stored explanation when the settings are unchanged)."""
    run_id = store.resolve_id(run_id)
    record = store.load(run_id)
    if record.get("status") != "complete":
        raise UsageError(f"run {run_id} is not complete (status {record.get('status')}); "
                         "only complete runs are explained")
    plan = plan_for_record(record, data_dir)
    settings = settings_for(plan.task, plan.protocol.name)
    stored = record.get("explanation")
    if stored and stored.get("settings") == settings.to_dict() and not force \
            and (store.run_dir(run_id) / FOLDER / DOCUMENT).is_file():
        return stored
    progress = progress or ProgressReporter(False)
    with store.lock(run_id):
        started = time.perf_counter()
        staged = store.run_dir(run_id) / f".{FOLDER}.tmp"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        try:
            with preserved_random_state():  # explaining never disturbs the caller's random state
                subject = _subject(plan, store, run_id, settings, device)
                document = _explain(subject, settings, plan.seed, staged, progress)
            seconds = round(time.perf_counter() - started, 3)
            agreement = _prediction_agreement(store, run_id, document["items"])
            block = _record_block(run_id, subject, settings, document, agreement, seconds, device)
            document |= {"run_id": run_id} | {k: v for k, v in block.items() if k not in ("faithfulness",)}
            write_json_atomic(staged / DOCUMENT, document)
            store.replace_folder(run_id, FOLDER, staged)
        except BaseException:  # interrupted or failed: no half-written folder stays behind
            shutil.rmtree(staged, ignore_errors=True)
            raise
        fresh = store.read_result(run_id) or record  # re-read under the lock: never overwrite newer fields
        store.write_result(fresh | {"explanation": block})
    log.info("run %s explained: %d items in %.1f s", run_id, block["n_items"], seconds)
    return block


def _record_block(run_id: str, subject: Subject, settings: ExplainSettings, document: dict[str, Any],
                  agreement: float | None, seconds: float, device: str) -> dict[str, Any]:
    """The `explanation` block of result.json: method, settings, cost, faithfulness and highlights."""
    if agreement is not None and agreement < 1.0:  # the explained model is not exactly the evaluated one
        log.warning("run %s: the rebuilt model agrees with the stored predictions on only %.0f%% of the explained "
                    "items (nondeterministic kernels, or changed data or weights)", run_id, 100 * agreement)
    explainer = subject.explainer
    return {
        "method": explainer.method, "unit": explainer.unit, "target": explainer.target,
        "randomisation": subject.randomisation, "settings": settings.to_dict(), "n_items": len(document["items"]),
        "faithfulness": document["faithfulness"], "highlights": highlights(document["summary"]),
        "prediction_agreement": agreement, "seconds": seconds, "device": device,
        "captum": metadata.version("captum"), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Restore every generator and flag explaining may touch: Python's and numpy's global RNGs (SB3's
    set_random_seed reseeds them when a control agent is rebuilt), torch's CPU and CUDA generators, and
    cuDNN's determinism flags (SB3 sets those too)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


# --- what to explain ------------------------------------------------------------------------------
def _subject(plan: RunPlan, store: RunStore, run_id: str, settings: ExplainSettings, device: str) -> Subject:
    """The rebuilt run, the explainer its task declares, and the seeded sample to explain."""
    if plan.task.spec.modality == "control":
        return _control_subject(plan, store, run_id, settings, device)
    backbone, model = rebuild_task_model(plan, store, run_id, device)
    explainer = choose_explainer(plan.task, backbone, plan.protocol, settings, device)
    randomised, how = randomised_task_model(model)
    examples = sample_examples(plan.task, plan.protocol, explainer, lambda: store.read_predictions(run_id),
                               settings.examples, plan.seed)
    return Subject(explainer, model, randomised, examples, how)


def _control_subject(plan: RunPlan, store: RunStore, run_id: str, settings: ExplainSettings, device: str) -> Subject:
    """A control run explains states its rebuilt agent meets; its backbone lives inside the agent."""
    agent, normalise = rebuild_agent(plan, store, run_id, device)
    states = sample_states(plan.task, plan.protocol, agent, normalise, settings.examples, plan.seed)
    explainer = choose_explainer(plan.task, None, plan.protocol, settings, device)
    randomised, how = randomised_policy(agent)
    return Subject(explainer, agent, randomised, states, how)


# --- explaining -----------------------------------------------------------------------------------
def _explain(subject: Subject, settings: ExplainSettings, seed: int, staged: Path,
             progress: ProgressReporter) -> dict[str, Any]:
    """Attribute every item, score its faithfulness and randomisation check, summarise: the stored document."""
    explainer, model = subject.explainer, subject.model
    rng = np.random.default_rng([seed, SAMPLE_SALT, 1])
    items = explainer.items(model, subject.examples)
    if not items:
        raise NothingToExplain("nothing to explain: the sampled test examples hold no predicted output "
                               "(e.g. the model predicts no entity)")
    attributions, rows = [], []
    with progress.phase("explain", len(items)) as update:
        for item in items:
            attribution = explainer.attribute(model, item)
            def score(keep: np.ndarray, item: Any = item) -> np.ndarray:
                return explainer.scores(model, item, keep)

            numbers = example_faithfulness(attribution.units, score, rng, n_random=settings.random_rankings)
            numbers["randomisation_spearman"] = rank_correlation(attribution.units,
                                                                 explainer.attribute(subject.randomised, item).units)
            if attribution.completeness_gap is not None:
                numbers["ig_completeness_gap"] = attribution.completeness_gap
            attributions.append(attribution)
            rows.append({"id": item.id, "label": item.label} | explainer.item_record(item, attribution) | numbers)
            update()
    summary = explainer.summarise(items, attributions)
    return {"items": rows, "faithfulness": summarise(rows, seed=seed), "summary": summary,
            "visuals": explainer.visuals(items, attributions, staged)}


def _prediction_agreement(store: RunStore, run_id: str, rows: list[dict[str, Any]]) -> float | None:
    """Share of explained classification examples whose rebuilt prediction equals the stored one: the
    check that the explained model is the evaluated model."""
    try:
        stored = {p["id"]: p["pred"] for p in store.read_predictions(run_id)}
    except FileNotFoundError:
        return None
    agree = []
    for row in rows:
        example_id = row["id"].split("#")[0]
        pred = stored.get(example_id)
        if isinstance(pred, dict) and "label" in pred:
            agree.append(row["label"] == pred["label"])
        elif isinstance(pred, list) and "span" in row:  # NER: the explained entity is among the stored ones
            agree.append((row["span"][0], row["span"][1], row["type"]) in iob2_entities(pred))
    return round(sum(agree) / len(agree), 4) if agree else None
