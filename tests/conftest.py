from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Under pytest-xdist (CI runs `-n 2`), each worker gets one torch thread, and so do the CLI processes it starts
# (they inherit the variable): two workers on two cores, each with two threads, would fight over the cores.
# Set before any test module imports torch, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
HARNESS = [sys.executable, "-m", "harness"]


# One cache for the whole session (the synthesised keyword corpus is made once), never the user's.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="harness-test-cache-"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never reach a hub or a dataset server: the defaults must work offline.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(SESSION_CACHE))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


def cli_env(runs_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HARNESS_OFFLINE": "1", "HARNESS_RUNS_DIR": str(runs_dir),
                "HARNESS_CACHE_DIR": str(SESSION_CACHE), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_cli(*args: str, runs_dir: Path, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(runs_dir, **extra_env), cwd=runs_dir.parent)


@pytest.fixture(scope="session")
def tiny_text_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-initialised BERT with MiniLM's real tokenizer: fast unit tests of real code paths."""
    from transformers import BertConfig, BertModel

    from harness.backbones.catalog import minilm  # noqa: F401  (registers the packaged backbone)
    from harness.backbones.spec import BACKBONES

    source = BACKBONES.get("minilm").resolve().path
    target = tmp_path_factory.mktemp("tiny-bert")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(target)
    return target


TINY_VIT_ARGS = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture(scope="session")
def tiny_vit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-initialised ViT saved as a timm model folder (config.json + model.safetensors), the
    layout of timm's hub repos: a token-shaped image backbone that needs no download."""
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY_VIT_ARGS)
    target = tmp_path_factory.mktemp("tiny-vit") / "tiny-vit"
    save_for_hf(model, target, model_args=TINY_VIT_ARGS, safe_serialization=True)
    return target
