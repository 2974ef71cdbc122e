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
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
