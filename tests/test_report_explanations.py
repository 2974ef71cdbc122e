"""The reports' explainability sections read run folders as input: what they pool, and what they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report.explanations import explanation_sections
from harness.store import RunStore

SETTINGS = {"examples": 3, "ig_steps": 8, "random_rankings": 1, "visuals": 1}
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 16


def _item(ident: str, deletion: float) -> dict:
    return {"id": ident, "label": "x", "n_units": 4, "deletion_auc": deletion, "deletion_auc_random": 0.5,
            "insertion_auc": 0.6, "insertion_auc_random": 0.4}


def _run(root: Path, run_id: str, seed: int, items: list[dict], settings: dict | None = None,
         visuals: list | None = None, agreement: float = 1.0) -> str:
    folder = root / run_id / "explanations"
    folder.mkdir(parents=True)
    block = {"method": "m", "unit": "u", "target": "t", "randomisation": "r", "settings": settings or SETTINGS,
             "seconds": 2.0, "highlights": {}, "prediction_agreement": agreement}
    (root / run_id / "result.json").write_text(json.dumps({"run_id": run_id, "seed": seed, "status": "complete",
                                                            "explanation": block}))
    document = {"settings": settings or SETTINGS, "items": items, "visuals": visuals or []}
    (folder / "explanation.json").write_text(json.dumps(document))
    (folder / "ok.png").write_bytes(PNG)
    return run_id


def test_runs_are_pooled_as_runs_and_other_settings_are_counted_apart(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", 0, [_item("s1#0", 0.1), _item("s1#1", 0.1)])
    b = _run(tmp_path, "b", 1, [_item("s1", 0.3), _item("s2", 0.5)], agreement=0.5)
    c = _run(tmp_path, "c", 2, [_item("s9", 0.9)], settings=SETTINGS | {"examples": 24})
    (section,) = explanation_sections(RunStore(tmp_path), [("t", "m", [a, b, c, "missing"])])
    assert section["runs"] == 4 and section["runs_explained"] == 2 and section["runs_other_settings"] == 1
    faithfulness = section["faithfulness"]
    assert faithfulness["runs"] == 2 and faithfulness["deletion_auc"]["mean"] == pytest.approx((0.1 + 0.4) / 2)
    assert faithfulness["deletion_vs_random"]["clusters"] == 3  # s1 of run a is one sentence
    assert section["prediction_agreement"] == 0.5  # the worst run shows


@pytest.mark.parametrize("name", ["../../../escape.png", "/etc/passwd", "sub/ok.png", "ok.svg", ".hidden.png"])
def test_visual_file_names_cannot_leave_the_run_folder(tmp_path: Path, name: str) -> None:
    visuals = [{"kind": "image", "file": name, "id": "", "label": "l", "caption": "c"},
               {"kind": "image", "file": "ok.png", "id": "", "label": "l", "caption": "c"}]
    run = _run(tmp_path, "a", 0, [_item("s1", 0.1)], visuals=visuals)
    (section,) = explanation_sections(RunStore(tmp_path), [("t", "m", [run])])
    assert [v["file"] for v in section["visuals"]] == ["explain/t-m-ok.png"]


@pytest.mark.parametrize("document", [[], {"settings": SETTINGS}, {"settings": SETTINGS, "items": "x"},
                                      {"settings": SETTINGS, "items": [1, 2]}, {"items": [{"id": "a"}]}])
def test_malformed_explanation_files_count_as_unexplained(tmp_path: Path, document: object) -> None:
    good = _run(tmp_path, "good", 0, [_item("s1", 0.1)])
    bad = _run(tmp_path, "bad", 1, [_item("s1", 0.1)])
    (tmp_path / "bad" / "explanations" / "explanation.json").write_text(json.dumps(document))
    (section,) = explanation_sections(RunStore(tmp_path), [("t", "m", [bad, good])])
    assert section["runs_explained"] == 1 and section["seeds"] == [0]


def test_malformed_token_visuals_are_skipped(tmp_path: Path) -> None:
    visuals = [{"kind": "tokens", "label": "l", "tokens": [{"text": "a"}]},
               {"kind": "tokens", "label": "l", "tokens": [{"text": "a", "weight": 0.5, "in_target": True}]}]
    run = _run(tmp_path, "a", 0, [_item("s1", 0.1)], visuals=visuals)
    (section,) = explanation_sections(RunStore(tmp_path), [("t", "m", [run])])
    assert len(section["visuals"]) == 1 and section["visuals"][0]["tokens"][0]["shade"] == 1.0
