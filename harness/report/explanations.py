"""The explainability section of leaderboard and comparison reports: per task x model, the faithfulness
numbers pooled over the explained runs (seeds): the mean over runs of each run's mean, with a 95% two-stage
bootstrap interval (runs, then test examples within each run), the summary highlights, and a few example
visuals from the first explained run (token highlights, heat-map overlays, spectrogram maps).

Runs without an explanation are counted, never guessed: a cell shows how many of its runs were explained.
Only explanations made with the same method and settings as the first are pooled; others are counted apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from harness.explain.faithfulness import summarise
from harness.explain.storage import FOLDER, load_explanation
from harness.store import RunStore

MAX_VISUALS = 4
VISUAL_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.png")  # a plain file name in the run's folder, no path


def explanation_sections(store: RunStore, groups: Iterable[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
    """One section per (task, model, run ids) that has at least one explained run."""
    sections = []
    for task, model, run_ids in groups:
        explained = []
        for run_id in run_ids:
            record = store.read_result(run_id) or {}
            document = load_explanation(store, run_id) if record.get("explanation") else None
            if document is not None and document.get("settings") == record["explanation"].get("settings"):
                explained.append((record, document))
        if not explained:
            continue
        first_record, first_doc = explained[0]
        block = first_record["explanation"]
        same = [(r, d) for r, d in explained if _how(r["explanation"]) == _how(block)]
        pooled = [item | {"run": record["run_id"]} for record, doc in same for item in doc["items"]]
        agreements = [r["explanation"].get("prediction_agreement") for r, _ in same]
        sections.append({
            "task": task, "model": model, "runs": len(run_ids), "runs_explained": len(same),
            "runs_other_settings": len(explained) - len(same),
            "seeds": [r["seed"] for r, _ in same], "n_items": len(pooled),
            "method": block["method"], "unit": block["unit"], "target": block["target"],
            "randomisation": block["randomisation"],
            "seconds_per_run": sum(r["explanation"]["seconds"] for r, _ in same) / len(same),
            # the rebuilt model must be the evaluated one: the lowest agreement over the pooled runs
            "prediction_agreement": min((a for a in agreements if a is not None), default=None),
            "faithfulness": summarise(pooled, seed=0),
            "highlights": block.get("highlights", {}), "highlights_seed": first_record["seed"],
            "visuals": _visuals(store, first_record["run_id"], first_doc, task, model),
        })
    return sections


def _how(block: dict[str, Any]) -> tuple[Any, ...]:
    """What must match for explanations to be pooled: the method, its units and target, and the settings."""
    return (block.get("method"), block.get("unit"), block.get("target"), block.get("settings"))


def _visuals(store: RunStore, run_id: str, document: dict[str, Any], task: str, model: str) -> list[dict[str, Any]]:
    shown = []
    slug = "".join(c if c.isalnum() or c in "-." else "_" for c in f"{task}-{model}")
    for visual in document.get("visuals", []):
        if not isinstance(visual, dict):
            continue
        if visual.get("kind") == "image":
            name = visual.get("file")
            if not isinstance(name, str) or not VISUAL_FILE.fullmatch(name):
                continue  # a run folder from elsewhere is input: never read or write outside the folders
            source = store.run_dir(run_id) / FOLDER / name
            if not source.is_file():
                continue
            shown.append(visual | {"file": f"explain/{slug}-{name}", "source": str(source)})
        elif visual.get("kind") == "tokens":
            tokens = visual.get("tokens")
            if not isinstance(tokens, list) or not tokens or not all(
                    isinstance(t, dict) and isinstance(t.get("weight"), int | float) and "text" in t for t in tokens):
                continue  # missing or malformed tokens: nothing to highlight
            peak = max((abs(t["weight"]) for t in visual["tokens"]), default=0.0) or 1.0
            tokens = [t | {"shade": round(abs(t["weight"]) / peak, 3), "positive": t["weight"] > 0}
                      for t in visual["tokens"]]
            shown.append(visual | {"tokens": tokens})
    # class averages go first when there are any: they summarise, the examples illustrate
    shown.sort(key=lambda v: v.get("id") != "")
    return shown[:MAX_VISUALS]
