"""`harness run --explain`, `harness explain RUN_ID` and the reports' explainability section, end to end
through the real CLI on the smoke protocol and the packaged assets."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli

FAITHFULNESS_KEYS = {"deletion_auc", "deletion_auc_random", "insertion_auc", "insertion_auc_random",
                     "comprehensiveness", "sufficiency"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explain") / "runs"


def _json(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_document(run_dir: Path, record: dict) -> dict:
    block = record["explanation"]
    document = json.loads((run_dir / "explanations" / "explanation.json").read_text())
    assert document["n_items"] == block["n_items"] == len(document["items"]) > 0
    for item in document["items"]:
        assert set(item) >= FAITHFULNESS_KEYS
        assert len(item["attributions"]) == len(item["units"]) > 0
        assert item["deletion_curve"][0] == pytest.approx(item["full_score"], abs=1e-6)
    for key in ("deletion_auc", "insertion_auc", "comprehensiveness", "sufficiency"):
        entry = block["faithfulness"][key]
        assert entry["low"] <= entry["mean"] <= entry["high"]
    assert block["seconds"] > 0 and block["settings"]["examples"] == 3
    return document


def test_explain_a_text_run_changes_nothing_it_measured(runs: Path) -> None:
    record = _json(run_cli("run", "--task", "sentiment", "--protocol", "smoke", "--json", "--quiet", runs_dir=runs))
    run_dir = runs / record["run_id"]
    before = {name: _digest(run_dir / name) for name in ("predictions.jsonl", "weights.safetensors")}

    block = _json(run_cli("explain", record["run_id"][:20], "--json", "--quiet", runs_dir=runs))
    stored = json.loads((run_dir / "result.json").read_text())
    assert stored["explanation"] == block
    assert {k: v for k, v in stored.items() if k != "explanation"} == record  # metrics and all else unchanged
    assert {name: _digest(run_dir / name) for name in before} == before
    document = _check_document(run_dir, stored)
    assert block["method"].startswith("integrated gradients")
    assert block["prediction_agreement"] == 1.0  # the rebuilt model is the evaluated model
    words = document["items"][0]["units"]
    assert all(isinstance(w, str) and w for w in words)
    assert document["visuals"][0]["kind"] == "tokens"

    again = _json(run_cli("explain", record["run_id"], "--json", "--quiet", runs_dir=runs))
    assert again == block  # stored: not recomputed
    forced = _json(run_cli("explain", record["run_id"], "--force", "--json", "--quiet", runs_dir=runs))
    assert forced["faithfulness"] == block["faithfulness"]  # seeded sample and rankings: the same numbers

    shown = run_cli("show", record["run_id"], runs_dir=runs)
    assert shown.returncode == 0 and "deletion AUC" in shown.stdout and "randomisation check" in shown.stdout


@pytest.mark.parametrize(("task", "visual"), [("fashion-mnist", "gradcam-0.png"), ("keywords", "occlusion-0.png"),
                                              ("cartpole", "dimensions.png"), ("cartpole-pixels", "occlusion-0.png")])
def test_run_with_explain_stores_numbers_and_visuals(runs: Path, task: str, visual: str) -> None:
    record = _json(run_cli("run", "--task", task, "--protocol", "smoke", "--explain", "--json", "--quiet",
                           runs_dir=runs))
    run_dir = runs / record["run_id"]
    stored = json.loads((run_dir / "result.json").read_text())
    assert stored["explanation"] == record["explanation"]
    _check_document(run_dir, stored)
    assert (run_dir / "explanations" / visual).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.name.startswith(".explanations") for p in run_dir.iterdir())  # no staging folder left


def test_a_vision_transformer_from_a_timm_folder_is_explained_on_its_patch_grid(tiny_vit_folder: Path,
                                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "my-vit"
    shutil.copytree(tiny_vit_folder, folder)
    runs = tmp_path / "runs"
    record = _json(run_cli("run", "--task", "fashion-mnist", "--backbone", str(folder), "--protocol", "smoke",
                           "--explain", "--json", "--quiet", runs_dir=runs))
    assert record["backbone"] == "my-vit" and record["backbone_ref"] == str(folder.resolve())
    block = record["explanation"]
    assert block["method"].startswith("Grad-CAM of the class logit on the patch tokens of the last transformer block")
    run_dir = runs / record["run_id"]
    document = _check_document(run_dir, json.loads((run_dir / "result.json").read_text()))
    assert all(len(item["units"]) == 16 for item in document["items"])  # 32 px in 8 px patches: 4 x 4
    assert (run_dir / "explanations" / "gradcam-0.png").is_file()
    assert block["prediction_agreement"] == 1.0  # rebuilt from the folder: the evaluated model

    folder.rename(tmp_path / "moved")  # the folder the run was trained from is gone: a clear error, no traceback
    out = run_cli("explain", record["run_id"], "--force", runs_dir=runs)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "which no longer exists" in out.stderr
    assert json.loads((run_dir / "result.json").read_text())["explanation"] == block  # the stored one stays


def test_report_shows_the_explainability_section(runs: Path, tmp_path: Path) -> None:
    if not any(runs.glob("*/explanations")):
        pytest.skip("needs the explained runs of the tests above")
    out = run_cli("report", "--protocol", "smoke", "--out", str(tmp_path / "report"), runs_dir=runs)
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'id="explainability"' in html and 'id="explain-faithfulness"' in html
    assert '<span class="tok' in html  # token highlights
    assert "data:image/png;base64," in html  # heat maps and spectrogram maps, embedded
    markdown = (tmp_path / "report" / "README.md").read_text()
    assert "## Explainability" in markdown
    pngs = list((tmp_path / "report" / "explain").glob("*.png"))
    assert pngs and all(f"(explain/{p.name})" in markdown for p in pngs)
    data = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    sections = {(s["task"], s["model"]) for s in data["explanations"]}
    assert ("sentiment", "minilm (full)") in sections and ("fashion-mnist", "efficientnet-lite0 (full)") in sections
    assert all("source" not in v for s in data["explanations"] for v in s["visuals"])  # no local paths leak


def test_explain_errors_are_one_line(runs: Path) -> None:
    out = run_cli("explain", "no-such-run", runs_dir=runs)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no run 'no-such-run'" in out.stderr
    out = run_cli("explain", "x", "--device", "tpu", runs_dir=runs)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_compare_shows_both_models_explanations(runs: Path, tmp_path: Path) -> None:
    if not any(runs.glob("sentiment-minilm-full-*/explanations")):
        pytest.skip("needs the explained sentiment run of the first test")
    _json(run_cli("run", "--task", "sentiment", "--protocol", "smoke", "--adapt", "frozen", "--explain", "--json",
                  "--quiet", runs_dir=runs))
    out = run_cli("compare", "--backbones", "minilm:full,minilm:frozen", "--tasks", "sentiment", "--protocol", "smoke",
                  "--out", str(tmp_path / "compare"), runs_dir=runs)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert [(s["task"], s["model"]) for s in data["explanations"]] == [("sentiment", "minilm (full)"),
                                                                        ("sentiment", "minilm (frozen)")]
    html = (tmp_path / "compare" / "index.html").read_text()
    assert 'id="explainability"' in html and html.count('<span class="tok') > 2
