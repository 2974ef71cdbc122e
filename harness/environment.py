"""What a run record says about the software and hardware it ran on (read without importing packages)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import harness

_PACKAGES = ("torch", "transformers", "timm", "accelerate", "numpy", "tokenizers")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_sha() -> str | None:
    """The commit of the harness source tree, when it runs from a git checkout."""
    root = Path(harness.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def describe_environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {"harness": harness.__version__, "python": platform.python_version()}
    env.update({name: package_version(name) for name in _PACKAGES})
    env["device"] = device
    env["device_name"] = _device_name(device)
    env["gpu_count"] = _gpu_count(device)  # the GPUs this process sees (under Ray: the ones it was given)
    env["platform"] = platform.platform(terse=True)
    env["git_sha"] = git_sha()
    return env


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def _gpu_count(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.device_count()
    return 0
