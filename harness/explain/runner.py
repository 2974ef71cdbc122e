"""Explain a stored run: rebuild its trained model from the run record and weights, attribute a fixed,
seeded sample of test examples (or states), measure faithfulness and the randomisation check, summarise,
and store it all beside the run.

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
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import NothingToExplain, UsageError
from harness.explain.base import Explainer, ExplainSettings, settings_for
from harness.explain.faithfulness import example_faithfulness, rank_correlation, summarise
from harness.explain.storage import DOCUMENT, FOLDER
from harness.explain.summary import highlights
from harness.progress import ProgressReporter
from harness.store import WEIGHTS, RunStore, write_json_atomic

log = logging.getLogger("harness")
SAMPLE_SALT = 0xE4  # the explained sample depends on the run's seed only, never on the global RNG


def explain_run(store: RunStore, run_id: str, device: str = "cpu", data_dir: str | None = None,
                force: bool = False, progress: ProgressReporter | None = None) -> dict[str, Any]:
    """Explain one complete run (or return its stored explanation when the settings are unchanged)."""
    run_id = store.resolve_id(run_id)
    record = store.load(run_id)
    if record.get("status") != "complete":
        raise UsageError(f"run {run_id} is not complete (status {record.get('status')}); "
                         "only complete runs are explained")
    plan = _plan_for(record, data_dir)
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
                explainer, model, randomised, examples, how = _subject(plan, store, run_id, settings, device)
                document = _explain(explainer, model, randomised, examples, settings, plan.seed, staged, progress)
            seconds = round(time.perf_counter() - started, 3)
            agreement = _prediction_agreement(store, run_id, document["items"])
            block = _record_block(run_id, explainer, how, settings, document, agreement, seconds, device)
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


def _record_block(run_id: str, explainer: Explainer, how: str, settings: ExplainSettings, document: dict[str, Any],
                  agreement: float | None, seconds: float, device: str) -> dict[str, Any]:
    """The `explanation` block of result.json: method, settings, cost, faithfulness and highlights."""
    if agreement is not None and agreement < 1.0:  # the explained model is not exactly the evaluated one
        log.warning("run %s: the rebuilt model agrees with the stored predictions on only %.0f%% of the explained "
                    "items (nondeterministic kernels, or changed data or weights)", run_id, 100 * agreement)
    return {
        "method": explainer.method, "unit": explainer.unit, "target": explainer.target,
        "randomisation": how, "settings": settings.to_dict(), "n_items": len(document["items"]),
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


# --- rebuilding the run ---------------------------------------------------------------------------
def _plan_for(record: dict[str, Any], data_dir: str | None) -> Any:
    from harness.api import plan_runs

    backbone = record.get("backbone_ref") or record["backbone"]  # a folder-made run names its folder there
    if backbone.startswith("/") and not Path(backbone).is_dir():
        raise UsageError(f"run {record['run_id']} was trained from the backbone folder {backbone}, "
                         "which no longer exists: put the folder back to explain it")
    plan = plan_runs(record["task"], backbone, record["protocol"], [record["seed"]], record["adapt"],
                     bool(record["config"].get("deterministic")), data_dir)[0]
    if plan.config_hash != record["config_hash"]:
        changed = sorted(k for k in plan.config if plan.config.get(k) != record["config"].get(k))
        raise UsageError(f"run {record['run_id']} cannot be rebuilt here: its configuration differs in "
                         f"{', '.join(changed) or 'the config hash'} (another harness version, task version or data)")
    return plan


def _load_state(store: RunStore, run_id: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = store.run_dir(run_id) / WEIGHTS
    if not path.is_file():
        raise UsageError(f"run {run_id} has no {WEIGHTS}: its trained model cannot be rebuilt")
    return load_file(str(path))


def _subject(plan: Any, store: RunStore, run_id: str, settings: ExplainSettings,
             device: str) -> tuple[Explainer, Any, Any, list[Any], str]:
    """The explainer, the trained model, its randomised copy, and what to explain."""
    if plan.task.spec.modality == "control":
        return _control_subject(plan, store, run_id, settings, device)
    from harness.explain.randomise import randomised_task_model
    from harness.training.model import build_task_model

    backbone = plan.backbone.build(plan.asset)
    model = build_task_model(plan.task, plan.backbone, backbone, plan.protocol, plan.adaptation)
    state = _load_state(store, run_id)
    absent = set(model.trainable_state()) - set(state)  # e.g. batch-norm statistics, stored only since v2 tasks
    if absent:
        raise UsageError(f"run {run_id}: its stored weights lack {len(absent)} tensors the trained model had "
                         f"(e.g. {sorted(absent)[0]}), so it cannot be rebuilt exactly; rerun it with --force")
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise UsageError(f"run {run_id}: stored weights do not fit the rebuilt model ({len(unexpected)} unexpected)")
    model.to(device).eval()
    explainer = _supervised_explainer(plan, backbone, settings, device)
    randomised, how = randomised_task_model(model)
    return explainer, model, randomised, _sample(plan, store, run_id, settings), how


def _supervised_explainer(plan: Any, backbone: Any, settings: ExplainSettings, device: str) -> Explainer:
    from harness.audio_tasks import AudioClassificationTask
    from harness.image_tasks import ImageClassificationTask
    from harness.text_tasks import SequenceClassificationTask, TokenClassificationTask

    task = plan.task
    if hasattr(task, "build_explainer"):  # a plugin task may bring its own
        return task.build_explainer(backbone, plan.protocol, settings, device)
    if isinstance(task, TokenClassificationTask):
        from harness.explain.text import EntityExplainer

        return EntityExplainer(task, backbone, plan.protocol, settings, device)
    if isinstance(task, SequenceClassificationTask):
        from harness.explain.text import SentenceClassificationExplainer

        return SentenceClassificationExplainer(task, backbone, plan.protocol, settings, device)
    if isinstance(task, ImageClassificationTask):
        from harness.explain.image import ImageExplainer

        return ImageExplainer(task, backbone, plan.protocol, settings, device)
    if isinstance(task, AudioClassificationTask):
        from harness.explain.audio import AudioExplainer

        return AudioExplainer(task, backbone, plan.protocol, settings, device)
    raise UsageError(f"task '{task.spec.name}' has no explainer (define build_explainer() on the task)")


def _sample(plan: Any, store: RunStore, run_id: str, settings: ExplainSettings) -> list[Any]:
    """A seeded sample of the run's test examples. NER explains predicted entities, so it samples among
    the sentences where the run predicted at least one (from its stored predictions)."""
    from harness.metrics import iob2_entities
    from harness.text_tasks import TokenClassificationTask

    rows = plan.task.load_split("test", plan.protocol.test_limit)
    rng = np.random.default_rng([plan.seed, SAMPLE_SALT])
    if isinstance(plan.task, TokenClassificationTask):
        with_entities = {p["id"] for p in store.read_predictions(run_id) if iob2_entities(p["pred"])}
        rows = [r for r in rows if r.id in with_entities]
    chosen = np.sort(rng.choice(len(rows), size=min(settings.examples, len(rows)), replace=False))
    return [rows[i] for i in chosen]


def _control_subject(plan: Any, store: RunStore, run_id: str, settings: ExplainSettings,
                     device: str) -> tuple[Explainer, Any, Any, list[Any], str]:
    from harness.api import control_backbone_factory
    from harness.explain.control import (
        PixelControlExplainer,
        PolicyProbs,
        VectorControlExplainer,
        collect_states,
        normaliser,
    )
    from harness.explain.randomise import randomised_policy
    from harness.training.control import build_agent

    model, env = build_agent(plan.task, control_backbone_factory(plan), plan.protocol, plan.seed, device,
                             frozen=plan.adaptation.mode == "frozen", pretrained=plan.asset.source != "random init")
    env.close()
    state = _load_state(store, run_id)
    policy_state = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
    model.policy.load_state_dict(policy_state, strict=True)
    obs_rms = ({"mean": state["obs_rms.mean"].numpy(), "var": state["obs_rms.var"].numpy()}
               if "obs_rms.mean" in state else None)
    agent = PolicyProbs(model.policy, plan.protocol.algo).to(device).eval()
    rng = np.random.default_rng([plan.seed, SAMPLE_SALT])
    states = collect_states(plan.task, plan.protocol, agent, normaliser(obs_rms), settings.examples, plan.seed, rng)
    pixels = plan.task.observation_kind() == "pixels"
    explainer = (PixelControlExplainer if pixels else VectorControlExplainer)(plan.task, settings, device)
    randomised, how = randomised_policy(agent)
    return explainer, agent, randomised, states, how


# --- explaining -----------------------------------------------------------------------------------
def _explain(explainer: Explainer, model: Any, randomised: Any, examples: list[Any], settings: ExplainSettings,
             seed: int, staged: Path, progress: ProgressReporter) -> dict[str, Any]:
    rng = np.random.default_rng([seed, SAMPLE_SALT, 1])
    items = explainer.items(model, examples)
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
                                                                 explainer.attribute(randomised, item).units)
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
    from harness.metrics import iob2_entities

    agree = []
    for row in rows:
        example_id = row["id"].split("#")[0]
        pred = stored.get(example_id)
        if isinstance(pred, dict) and "label" in pred:
            agree.append(row["label"] == pred["label"])
        elif isinstance(pred, list) and "span" in row:  # NER: the explained entity is among the stored ones
            agree.append((row["span"][0], row["span"][1], row["type"]) in iob2_entities(pred))
    return round(sum(agree) / len(agree), 4) if agree else None
