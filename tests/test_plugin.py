"""Third-party discovery: a separately installed distribution adds a task and a backbone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HARNESS, REPO

PLUGIN = REPO / "tests" / "plugins" / "harness-demo-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the demo plugin with pip into its own folder (a real wheel build and install)."""
    target = tmp_path_factory.mktemp("plugin-site")
    source = tmp_path_factory.mktemp("plugin-src") / PLUGIN.name
    shutil.copytree(PLUGIN, source)  # builds write build/ next to the sources: keep the checkout clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(source)], check=True)
    return target


def _harness(*args: str, path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(path), HF_HUB_OFFLINE="1", HARNESS_RUNS_DIR=str(tmp_path / "runs"))
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_plugin_task_and_backbone_are_discovered(plugin_site: Path, tmp_path: Path) -> None:
    out = _harness("list", "--json", path=plugin_site, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    tasks = {t["name"]: t for t in listing["tasks"]}
    assert tasks["demo-topics"]["origin"] == "harness_demo_plugin:DemoTopics"
    assert tasks["demo-topics"]["source"] == "entry point of harness-demo-plugin"
    assert {"ner", "sentiment"} <= set(tasks)
    assert "demo-minilm" in {b["name"] for b in listing["backbones"]}


def test_plugin_task_runs_through_the_cli(plugin_site: Path, tmp_path: Path) -> None:
    out = _harness("run", "--task", "demo-topics", "--backbone", "demo-minilm", "--protocol", "smoke", "--json",
                   "--quiet", path=plugin_site, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["status"] == "complete" and record["task"] == "demo-topics"
    assert record["backbone"] == "demo-minilm" and 0.0 <= record["primary"] <= 1.0


def test_duplicate_task_name_from_another_distribution(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = site / "evil_ner-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: evil-ner\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[harness.tasks]\nner = evil_ner:Ner\n")
    listing = _harness("list", "tasks", path=site, tmp_path=tmp_path)
    assert listing.returncode == 0, listing.stderr  # one clash never hides every other task
    assert "sentiment" in listing.stdout and "duplicate task 'ner'" in listing.stdout
    out = _harness("run", "--task", "ner", path=site, tmp_path=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "duplicate task 'ner'" in lines[0]
    assert "harness_tasks.ner:NerTask" in lines[0] and "evil_ner:Ner" in lines[0]
