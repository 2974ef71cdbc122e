"""The explainability section of leaderboard and comparison reports: per task x model, the faithfulness
numbers pooled over the explained runs (seeds) with 95% bootstrap intervals, the summary highlights, and a
few example visuals from the first explained run (token highlights, heat-map overlays, spectrogram maps).

Runs without an explanation are counted, never guessed: a cell shows how many of its runs were explained.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.explain.faithfulness import summarise
from harness.explain.storage import FOLDER, load_explanation
from harness.store import RunStore

MAX_VISUALS = 4


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
        pooled = [item for _, doc in explained for item in doc["items"]]
        sections.append({
            "task": task, "model": model, "runs": len(run_ids), "runs_explained": len(explained),
            "seeds": [r["seed"] for r, _ in explained], "n_items": len(pooled),
            "method": block["method"], "unit": block["unit"], "target": block["target"],
            "randomisation": block["randomisation"],
            "seconds_per_run": sum(r["explanation"]["seconds"] for r, _ in explained) / len(explained),
            "faithfulness": summarise(pooled, seed=0),
            "highlights": block.get("highlights", {}), "highlights_seed": first_record["seed"],
            "visuals": _visuals(store, first_record["run_id"], first_doc, task, model),
        })
    return sections


def _visuals(store: RunStore, run_id: str, document: dict[str, Any], task: str, model: str) -> list[dict[str, Any]]:
    shown = []
    slug = "".join(c if c.isalnum() or c in "-." else "_" for c in f"{task}-{model}")
    for visual in document.get("visuals", []):
        if visual.get("kind") == "image":
            source = store.run_dir(run_id) / FOLDER / visual["file"]
            if not source.is_file():
                continue
            shown.append(visual | {"file": f"explain/{slug}-{visual['file']}", "source": str(source)})
        elif visual.get("kind") == "tokens":
            peak = max((abs(t["weight"]) for t in visual["tokens"]), default=0.0) or 1.0
            tokens = [t | {"shade": round(abs(t["weight"]) / peak, 3), "positive": t["weight"] > 0}
                      for t in visual["tokens"]]
            shown.append(visual | {"tokens": tokens})
    # class averages go first when there are any: they summarise, the examples illustrate
    shown.sort(key=lambda v: v.get("id") != "")
    return shown[:MAX_VISUALS]
