"""The machine a result was measured on, read without importing torch (the runner stays light)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.environment import cpu_flags, cpu_generation, cpu_model

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "transformers", "timm", "accelerate")
__all__ = ["cpu_flags", "cpu_generation", "cpu_model", "describe_line", "describe_machine", "ram_gib", "slug"]


def ram_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpus() -> list[str]:
    """GPU names from nvidia-smi, if there is one (no CUDA initialisation in this process)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def git_commit() -> str:
    """HEAD of the harness checkout, with '+uncommitted' when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20,
                              check=False).stdout.strip()

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+uncommitted" if git("status", "--porcelain", "--untracked-files=no") else "")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe_machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(), "cpu_generation": cpu_generation(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gib": ram_gib(), "gpus": gpus(), "hostname": socket.gethostname(),
        "platform": platform.platform(), "python": platform.python_version(), "packages": versions(),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # others' work on a shared machine
        "harness_commit": git_commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def slug(machine: dict[str, Any]) -> str:
    """A file-name tag for the machine: its first GPU's name, else its CPU model, and the core count
    (e.g. 'amd-epyc-7b13-2c'); hostnames are random in containers, so they are not used."""
    name = machine["gpus"][0] if machine.get("gpus") else machine.get("cpu", "cpu")
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$|\b\d+-core\b", " ", name, flags=re.IGNORECASE)
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "machine"
    return f"{text}-{machine.get('usable_cores') or machine.get('cores')}c"


def describe_line(machine: dict[str, Any]) -> str:
    """One line for reports and logs."""
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    gpu = f", GPU {', '.join(machine['gpus'])}" if machine.get("gpus") else ", no GPU"
    generation = f" ({machine['cpu_generation']})" if machine.get("cpu_generation") else ""
    flags = f" [{', '.join(machine['cpu_flags'])}]" if machine.get("cpu_flags") else ""
    return (f"{machine['cpu']}{generation}{flags}, {machine['usable_cores']} of {machine['cores']} cores usable, "
            f"{machine['ram_gib']} GiB RAM{gpu}; Python {machine['python']}, {packages}; "
            f"harness {machine['harness_commit'][:12]}{'+' if '+' in machine['harness_commit'] else ''}; "
            f"load average at start {machine['load_average']}; {machine['date']}")
