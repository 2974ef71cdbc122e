"""Where a run's explanation lives: `<run>/explanations/explanation.json` (+ PNG visuals). Torch-free, so
reports read explanations without importing the model stack."""

from __future__ import annotations

import json
from typing import Any

from harness.store import RunStore

FOLDER = "explanations"
DOCUMENT = "explanation.json"


def load_explanation(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The stored explanation document of a run, or None when there is none (or it is unreadable)."""
    path = store.run_dir(run_id) / FOLDER / DOCUMENT
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not _well_formed(document):
        return None
    return document


def _well_formed(document: Any) -> bool:
    """The fields readers rely on are there with the right types (a hand-edited or foreign file may not)."""
    if not isinstance(document, dict) or not isinstance(document.get("settings"), dict):
        return False
    items, visuals = document.get("items"), document.get("visuals", [])
    return (isinstance(items, list) and bool(items) and all(isinstance(i, dict) for i in items)
            and isinstance(visuals, list))
