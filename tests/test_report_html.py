"""The HTML report in a real headless browser, and escaping of every name that reaches a page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.report.frontier import best_under_budgets, task_frontier
from harness.report.leaderboard_report import table_groups
from harness.report.render import write_comparison, write_leaderboard

EVIL = '<script>alert("x")</script>'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def evil_report() -> dict:
    """A small report whose task, model and run names all carry markup."""
    task = {"name": f"task{EVIL}", "version": "1", "modality": "text", "primary_metric": "accuracy",
            "higher_is_better": True, "description": f"about {EVIL}", "metrics": ["accuracy"]}
    def cell(model: str, value: float, complete: bool = True, train_s: float = 1.5) -> dict:
        return {"task": task["name"], "model": model, "backbone": model, "seeds": [0, 1] if complete else [0],
                "missing_seeds": [] if complete else [1], "run_ids": [f"run{EVIL}"], "complete": complete,
                "estimate": value, "low": value - 0.05, "high": value + 0.05, "method": "hierarchical bootstrap",
                "per_seed": [value, value], "secondary": {"accuracy": value, f"label{EVIL}": 1.0},
                "efficiency": {"params": 22713216, "train_s": train_s, "train_examples_per_s": 10.0,
                               "eval_examples_per_s": 20.0, "peak_mem_mb": 100.0}}
    models = [f"model-a{EVIL} (full)", "model-b (frozen)", "model-c (partial:2)"]
    cells = [cell(models[0], 0.8, train_s=233.57), cell(models[1], 0.6, complete=False),
             cell(models[2], 0.7, train_s=0.5)]
    cells[0]["mark"] = "best"
    cells[2] |= {"mark": "tied", "vs_best": {"best": models[0], "difference": 0.1, "low": -0.01, "high": 0.2,
                                            "p_value": 0.2, "p_holm": 0.2, "seeds": [0, 1], "test": "paired"}}
    return {"name": f"board{EVIL}", "description": f"desc {EVIL}", "protocol": "smoke", "seeds": [0, 1],
            "command": f"harness report --leaderboard board{EVIL}",
            "generated_at": "2026-01-01T00:00:00+00:00", "harness_version": "0.1.0", "run_harness_versions": ["0.1.0"],
            "run_machines": [f"cpu{EVIL}", "CPU not recorded"],
            "tasks": [task], "models": models, "cells": cells, "groups": table_groups([task], cells),
            "aggregate": [{"model": m, "tasks": [task["name"]], "group_size": 3, "complete": i != 1,
                           "mean_rank": None, "rank_low": None, "rank_high": None, "borda": None,
                           "normalised_score": None} for i, m in enumerate(models)],
            "budgets": [{"tasks": [task["name"]], "rows": best_under_budgets(
                [models[0], models[2]], [233.57, 0.5], np.array([[0.8], [0.7]]), [True])}],
            "frontiers": [task_frontier(task["name"], cells, True)],
            "excluded": [{"run_id": f"old{EVIL}", "reason": f"protocol {EVIL}"}],
            "missing": [f"{task['name']} / {models[1]}: seeds 1"]}


def _models_in_order(dom: str) -> list[str]:
    """The rows of the first scores table, by model name up to its first space or markup."""
    table = dom[dom.index('id="scores-1"'):]
    table = table[:table.index("</table>")]
    return [part.split('"')[0].split("&")[0].split(" ")[0] for part in table.split('<tr data-model="')[1:]]


def evil_explanation(tmp_path: Path) -> dict:
    png = tmp_path / "source.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    interval = {"mean": 0.2, "low": 0.1, "high": 0.3, "n": 3}
    return {"task": f"t{EVIL}", "model": f"m{EVIL}", "runs": 2, "runs_explained": 1, "seeds": [0], "n_items": 3,
            "method": f"ig {EVIL}", "unit": f"word {EVIL}", "target": f"class {EVIL}", "randomisation": EVIL,
            "seconds_per_run": 1.5, "highlights": {f"label{EVIL}": f"top words: {EVIL}"}, "highlights_seed": 0,
            "faithfulness": {"n": 3, "deletion_auc": interval, "deletion_auc_random": interval,
                             "deletion_vs_random": interval | {"p_value": 0.01}},
            "visuals": [{"kind": "tokens", "id": "x", "label": f"pos{EVIL}",
                         "tokens": [{"text": EVIL, "weight": 0.5, "shade": 1.0, "positive": True, "in_target": False}]},
                        {"kind": "image", "file": "explain/x.png", "id": "", "label": f"img{EVIL}",
                         "caption": f"cap{EVIL}", "source": str(png)}]}


def test_every_name_is_escaped_in_html_and_markdown(tmp_path: Path) -> None:
    write_leaderboard(evil_report() | {"explanations": [evil_explanation(tmp_path)]}, tmp_path)
    html = (tmp_path / "index.html").read_text()
    assert EVIL not in html and html.count("<script>") == 1  # the table sorter, nothing from a name
    assert "&lt;script&gt;" in html
    assert 'id="explainability"' in html and "data:image/png;base64," in html
    assert (tmp_path / "explain" / "x.png").read_bytes().startswith(b"\x89PNG")
    assert "source.png" not in (tmp_path / "leaderboard.json").read_text()  # local paths stay out of the data
    markdown = (tmp_path / "README.md").read_text()
    assert "<script>" not in markdown and r"\<script\>" in markdown
    assert json.loads((tmp_path / "leaderboard.json").read_text())["name"] == f"board{EVIL}"  # data stays raw
    comparison = {"protocol": "smoke", "models": [f"a{EVIL}", "b"], "tasks": [f"t{EVIL}"], "alpha": 0.05,
                  "generated_at": "x", "harness_version": "0.1.0", "notes": [EVIL],
                  "summary": [{"a": f"a{EVIL}", "b": "b", "win": 1, "tie": 0, "loss": 0}],
                  "rows": [{"task": f"t{EVIL}", "seed": 0, "a": f"a{EVIL}", "b": "b", "metric": "accuracy",
                            "higher_is_better": True, "score_a": 0.9, "score_b": 0.8, "difference": 0.1, "low": 0.05,
                            "high": 0.15, "p_value": 0.01, "p_holm": 0.01, "test": "McNemar", "outcome": "win",
                            "n_examples": 10, "run_a": "r1", "run_b": "r2"}]}
    write_comparison(comparison, tmp_path / "cmp")
    html = (tmp_path / "cmp" / "index.html").read_text()
    assert EVIL not in html and html.count("<script>") == 1
    assert "<script>" not in (tmp_path / "cmp" / "README.md").read_text()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="apt-get install chromium")
def test_report_loads_in_headless_chromium_without_errors(tmp_path: Path) -> None:
    assert CHROMIUM, "CI must install Debian's chromium (.ci/run does)"
    write_leaderboard(evil_report(), tmp_path / "report")
    page = (tmp_path / "report" / "index.html").as_uri()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _models_in_order(dom.stdout) == ["model-a", "model-b", "model-c"]  # as the board lists them
    assert "missing" in dom.stdout and "seeds 0 only" in dom.stdout
    assert dom.stdout.count("<script") == 1  # only the table sorter: the names arrived as text
    assert 'class="best"' in dom.stdout and 'class="tied"' in dom.stdout and "22.7 M" in dom.stdout
    assert "234 s" in dom.stdout and 'id="frontier"' in dom.stdout and "data:image/svg+xml;base64," in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    # sorted by the first task's score, ascending, from a link; empty cells would sort last
    sorted_dom = subprocess.run([*flags, "--dump-dom", page + "#sort=scores-1:1:asc"], capture_output=True,
                                text=True, timeout=120)
    assert _models_in_order(sorted_dom.stdout) == ["model-b", "model-c", "model-a"]
    assert 'aria-sort="ascending"' in sorted_dom.stdout
    shot = tmp_path / "report.png"
    result = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,1400", page], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and shot.stat().st_size > 10_000, result.stderr[-2000:]
