"""What a run record says about the software and hardware it ran on (read without importing packages)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import harness

_PACKAGES = ("torch", "transformers", "timm", "accelerate", "numpy", "tokenizers")
CPUINFO = Path("/proc/cpuinfo")
# CPU features that change how fast a run trains: oneDNN's convolutions and bf16 run on AVX-512/AMX where the
# CPU has them. "AMD EPYC" alone names hosts of several generations (with AVX-512 and without), so a record
# keeps these and the family/model numbers: the same code once trained Fashion-MNIST 3x faster on another host.
SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


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


def _cpuinfo_fields(cpuinfo: Path) -> dict[str, str]:
    """The first processor's `key: value` lines of /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip() and fields:
            break  # the end of the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _model_name(fields: dict[str, str]) -> str:
    for key in ("model name", "Model", "cpu model"):
        if fields.get(key):
            return " ".join(fields[key].split())
    return platform.processor() or platform.machine() or "unknown CPU"


def _generation(fields: dict[str, str]) -> str | None:
    if fields.get("cpu family") and fields.get("model"):
        return f"family {fields['cpu family']}, model {fields['model']}"
    return None


def _simd_flags(fields: dict[str, str]) -> list[str]:
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    return [f for f in SIMD_FLAGS if f in present]


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform knows)."""
    return _model_name(_cpuinfo_fields(cpuinfo))


def cpu_generation(cpuinfo: Path = CPUINFO) -> str | None:
    """x86 family and model numbers ("family 25, model 1": AMD Zen 3), which tell hosts of one brand apart."""
    return _generation(_cpuinfo_fields(cpuinfo))


def cpu_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """Which of SIMD_FLAGS the CPU has."""
    return _simd_flags(_cpuinfo_fields(cpuinfo))


def describe_cpu(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """The CPU a run's timings come from: model name with family/model, SIMD features, usable cores (one read of
    /proc/cpuinfo)."""
    fields = _cpuinfo_fields(cpuinfo)
    generation = _generation(fields)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 0
    return {"cpu": _model_name(fields) + (f" ({generation})" if generation else ""), "cpu_flags": _simd_flags(fields),
            "cpu_cores": cores}


def machine_label(env: dict[str, Any]) -> str:
    """One short line for the machine a record's timings come from: its GPUs, else its CPU and features.
    Records made before the CPU was recorded say so rather than guess."""
    if str(env.get("device", "")).startswith("cuda"):
        count = env.get("gpu_count") or 1
        return f"{count} x {env.get('device_name', 'GPU')}" if count > 1 else str(env.get("device_name", "GPU"))
    if not env.get("cpu"):
        return "CPU not recorded"
    flags = ", ".join(env.get("cpu_flags") or []) or "no AVX2"
    cores = f", {env['cpu_cores']} cores" if env.get("cpu_cores") else ""
    return f"{env['cpu']} [{flags}]{cores}"


def describe_environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {"harness": harness.__version__, "python": platform.python_version()}
    env.update({name: package_version(name) for name in _PACKAGES})
    env["device"] = device
    env["device_name"] = _device_name(device)
    env["gpu_count"] = _gpu_count(device)  # the GPUs this process sees (under Ray: the ones it was given)
    env.update(describe_cpu())  # timings depend on it even on a GPU (data decoding, the host side)
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
