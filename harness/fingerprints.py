"""Content fingerprints of data and model files: "sha256:<hex>" of what the files hold, never of names and sizes.

A run's identity must change whenever the bytes it reads change (same names and sizes included), yet a
rerun must not re-read gigabytes. So each file's digest is remembered under the harness cache
(`HARNESS_CACHE_DIR`, else ~/.cache/harness) keyed by its resolved folder, name, size, mtime_ns,
ctime_ns, inode and device; any difference re-reads the file. ctime cannot be set from user space, so
a file replaced by one with the same size and a restored mtime (tar, cp -p, rsync -t) is still re-read.
Files changed in the last two seconds are hashed but not remembered (a second write within one timestamp
tick would be invisible). One small JSON file per folder, replaced atomically; a damaged one is ignored
and rebuilt; two processes writing at once lose at most each other's new entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError

log = logging.getLogger("harness")
CACHE_VERSION = 1
FRESH_NS = 2_000_000_000  # files changed this recently are not remembered (racy timestamps)
_LOUD_BYTES = 256 << 20  # hashing more than this is worth a log line


def cache_root() -> Path:
    """The harness cache (HARNESS_CACHE_DIR, else ~/.cache/harness), as the feature and data caches use it."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")


def _stamp(st: os.stat_result) -> list[int]:
    """What must be unchanged for a remembered digest to be trusted."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _valid_entry(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 6 and all(type(v) is int for v in value[:5])
            and isinstance(value[5], str) and len(value[5]) == 64)


class _FolderCache:
    """The remembered digests of one folder's files: {name: [size, mtime_ns, ctime_ns, ino, dev, hex]}."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        key = hashlib.sha256(self.folder.encode()).hexdigest()[:32]
        self.path = cache_root() / "fingerprints" / f"{key}.json"
        self.entries = self._read()
        self.changed = False

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):  # missing or damaged: start again, never trust it
            return {}
        if (not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("folder") != self.folder
                or not isinstance(data.get("files"), dict)):
            return {}
        return {name: entry for name, entry in data["files"].items() if _valid_entry(entry)}

    def lookup(self, name: str, st: os.stat_result) -> str | None:
        entry = self.entries.get(name)
        return entry[5] if entry is not None and entry[:5] == _stamp(st) else None

    def remember(self, name: str, st: os.stat_result, hexdigest: str) -> None:
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < FRESH_NS:
            return
        self.entries[name] = [*_stamp(st), hexdigest]
        self.changed = True

    def save(self) -> None:
        """Merge with what another process may have written meanwhile, then replace the file atomically."""
        if not self.changed:
            return
        merged = self._read() | self.entries
        body = {"version": CACHE_VERSION, "folder": self.folder, "files": merged}
        try:
            _replace_atomically(self.path, json.dumps(body, separators=(",", ":")).encode())
        except OSError as exc:  # a read-only cache only costs a re-read next time
            log.debug("fingerprint cache %s not written: %s", self.path, exc)
        self.changed = False


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write a sibling temporary file, then rename it over `path`: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _Hasher:
    """Content digests of many files through the folder caches; `close()` saves what was learnt."""

    def __init__(self) -> None:
        self._folders: dict[str, _FolderCache] = {}
        self._resolved: dict[str, Path] = {}
        self.bytes_read = 0

    def _folder(self, parent: Path) -> _FolderCache:
        resolved = self._resolved.get(str(parent))
        if resolved is None:  # resolved once per folder, not per file: symlinked data dirs share one cache
            resolved = self._resolved[str(parent)] = parent.resolve()
        cache = self._folders.get(str(resolved))
        if cache is None:
            cache = self._folders[str(resolved)] = _FolderCache(resolved)
        return cache

    def hexdigest(self, path: Path) -> str:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        cache = self._folder(path.parent)
        known = cache.lookup(path.name, st)
        if known is not None:
            return known
        hexdigest, stable = _read_digest(path)
        self.bytes_read += stable.st_size if stable is not None else 0
        if stable is not None:
            cache.remember(path.name, stable, hexdigest)
        return hexdigest

    def close(self) -> None:
        for cache in self._folders.values():
            cache.save()


def _read_digest(path: Path) -> tuple[str, os.stat_result | None]:
    """The file's sha256, and its stat when nothing changed while it was read (else None: not remembered)."""
    try:
        with path.open("rb") as fh:
            before = os.fstat(fh.fileno())
            hexdigest = hashlib.file_digest(fh, "sha256").hexdigest()
            after = os.fstat(fh.fileno())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return hexdigest, before if _stamp(before) == _stamp(after) else None


def _hashing(paths: Iterable[Path], what: str) -> list[str]:
    """Every path's hex digest, in order, with the caches saved even when one file fails."""
    hasher = _Hasher()
    started = time.perf_counter()
    try:
        digests = [hasher.hexdigest(p) for p in paths]
    finally:
        hasher.close()
    if hasher.bytes_read > _LOUD_BYTES:
        log.info("fingerprinted %.1f GB of %s in %.0f s (remembered: later runs re-read only changed files)",
                 hasher.bytes_read / 1e9, what, time.perf_counter() - started)
    return digests


def content_digests(paths: Sequence[Path], what: str) -> list[str]:
    """Each file's sha256 (hex), in order, remembered per file like every fingerprint here: one cache session
    for the whole list, so a folder of many small files is cheap to digest again."""
    return _hashing([Path(p) for p in paths], what)


def file_fingerprint(path: Path) -> str:
    """"sha256:<hex>" of one file's content (what `sha256sum` prints)."""
    return "sha256:" + _hashing([Path(path)], str(path))[0]


def files_fingerprint(paths: Sequence[Path]) -> str:
    """One file: its own fingerprint; several: sha256 over their content digests in the given order
    (names are left out: the same data found in another folder is the same data)."""
    if not paths:
        raise UsageError("no data files to fingerprint")
    digests = _hashing([Path(p) for p in paths], ", ".join(str(p) for p in paths[:3]))
    if len(digests) == 1:
        return "sha256:" + digests[0]
    return "sha256:" + hashlib.sha256("".join(f"{d}\n" for d in digests).encode()).hexdigest()


def named_files_fingerprint(root: Path, names: Sequence[str]) -> str:
    """sha256 over each file's relative name (as given, '/'-separated) and content digest, in order:
    moving, renaming or changing any of them changes it."""
    root = Path(root)
    digests = _hashing([root / name for name in names], str(root))
    lines = "".join(f"{name}\0{digest}\n" for name, digest in zip(names, digests, strict=True))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def tree_files(root: Path) -> list[str]:
    """Every file under `root` as a sorted relative '/' name; hidden files and folders (.git, .cache,
    .DS_Store) are not data and are left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        relative = Path(folder).relative_to(root)
        found += [(relative / f).as_posix() for f in files if not f.startswith(".")
                  and os.path.isfile(os.path.join(folder, f))]
    return sorted(found)


def tree_fingerprint(root: Path) -> str:
    """The content fingerprint of a folder tree: relative names and content digests of every file."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    return named_files_fingerprint(root, tree_files(root))
