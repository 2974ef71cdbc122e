"""Run records on disk: one directory per run, an SQLite index that can always be rebuilt from them.

Layout of `<runs_dir>/<run_id>/`: result.json (written last: a directory without it is an
unfinished run), predictions.jsonl, weights.safetensors, run.log. Every file is written atomically
(temporary file in the same folder, fsync, rename), so a crash never leaves a half-written record.
A run id is derived from its config hash, so the same configuration always maps to the same directory.
A run made elsewhere (a Ray worker's scratch store) comes in whole through `import_run`: staged inside the
runs root, renamed into place under the run's lock, indexed; a half-shipped run never appears.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import RunInProgress, UsageError, did_you_mean

SCHEMA_VERSION = 1
RESULT = "result.json"
PREDICTIONS = "predictions.jsonl"
WEIGHTS = "weights.safetensors"
LOG = "run.log"
INDEX = "index.sqlite"
STAGING = ".staging"  # inside the runs root: runs being imported are assembled here, then renamed into place

log = logging.getLogger("harness")
_UMASK = os.umask(0)
os.umask(_UMASK)

_INDEX_COLUMNS = ("run_id", "config_hash", "status", "task", "task_version", "backbone", "adapt", "protocol",
                  "seed", "primary_metric", "primary_value", "created_at")
_CREATE_TABLE = f"CREATE TABLE IF NOT EXISTS runs ({', '.join(_INDEX_COLUMNS)}, PRIMARY KEY (run_id))"
_INSERT = f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(_INDEX_COLUMNS))})"
_RUN_ID = re.compile(r"(?!\.)[A-Za-z0-9._-]+")  # what make_run_id makes: one plain folder name
_HELD = threading.local()  # lock files this thread holds through RunStore.hold


def record_modality(record: dict[str, Any]) -> str | None:
    """A run's modality. Records from before it was stored: control runs are known by their RL protocol."""
    if record.get("modality"):
        return record["modality"]
    return "control" if "algo" in record.get("config", {}).get("protocol", {}) else None


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def make_run_id(task: str, backbone: str, adapt: str, protocol: str, seed: int, digest: str) -> str:
    parts = [task, backbone, adapt.replace(":", ""), protocol, f"s{seed}", digest[:10]]
    return "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", p).strip("_") or "x" for p in parts)


def write_atomic(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; records are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- reading ------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def read_result(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_dir(run_id) / RESULT
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"run record {path} is not valid JSON: {exc}") from None

    def find_complete(self, run_id: str, digest: str) -> dict[str, Any] | None:
        record = self.read_result(run_id)
        if record and record.get("status") == "complete" and record.get("config_hash") == digest:
            return record
        return None

    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / RESULT).is_file())

    def resolve_id(self, run_id: str) -> str:
        """An exact run id or an unambiguous prefix of one."""
        ids = self.run_ids()
        if run_id in ids:
            return run_id
        matches = [i for i in ids if i.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"run id prefix '{run_id}' is ambiguous: {', '.join(matches[:5])}")
        raise UsageError(f"no run '{run_id}' in {self.root}{did_you_mean(run_id, ids, list_known=False)}")

    def load(self, run_id: str) -> dict[str, Any]:
        record = self.read_result(self.resolve_id(run_id))
        assert record is not None
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        for run_id in self.run_ids():
            with contextlib.suppress(UsageError):
                record = self.read_result(run_id)
                if record is not None:
                    yield record

    def read_predictions(self, run_id: str) -> list[dict[str, Any]]:
        path = self.run_dir(self.resolve_id(run_id)) / PREDICTIONS
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    # --- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def claim(self, run_id: str) -> Iterator[Path]:
        """Hold an exclusive lock on a run and give it a clean directory.

        A directory left without result.json (a killed run) or with a failed result is wiped, so the
        run restarts cleanly. A second process asking for the same run while one holds it gets RunInProgress.
        """
        with self.lock(run_id):
            directory = self.run_dir(run_id)
            if directory.exists():
                log.warning("removing the unfinished run directory %s before restarting", directory)
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            yield directory

    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """An exclusive, non-blocking lock on one run (running it, or adding explanations to it). Taken while
        this thread holds the run through `hold`, it is that lock; otherwise a held lock is RunInProgress."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{run_id}.lock"
        if str(path.resolve()) in _held_locks():
            yield
            return
        with open(path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunInProgress(f"run {run_id} is already in progress in another process") from None
            yield

    @contextlib.contextmanager
    def hold(self, run_id: str) -> Iterator[None]:
        """Lock a run and keep the lock across this thread's later `claim`, `lock` or `import_run` of it: a
        leaderboard runner re-checks that the run is still missing and then runs (or imports) it, with no
        gap in which another runner could finish it first. RunInProgress when another process holds it."""
        with self.lock(run_id):
            key = str((self.root / ".locks" / f"{run_id}.lock").resolve())
            held = _held_locks()
            fresh = key not in held
            held.add(key)
            try:
                yield
            finally:
                if fresh:
                    held.discard(key)

    def replace_folder(self, run_id: str, name: str, staged: Path) -> Path:
        """Swap a fully written folder `staged` in as the run's `name` folder (e.g. explanations/): the old
        one is moved aside first and removed last, so a reader never sees a half-written folder."""
        final = self.run_dir(run_id) / name
        old = final.with_name(f".{name}.old")
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def export_run(self, run_id: str) -> bytes:
        """A finished run's folder (result.json present) as an uncompressed tar in memory, paths relative to
        the folder, hidden temporary files left out: what a remote worker ships back to `import_run`."""
        directory = self.run_dir(run_id)
        if not (directory / RESULT).is_file():
            raise UsageError(f"run {run_id} has no {RESULT}: only finished runs are exported")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(directory.rglob("*")):
                relative = path.relative_to(directory)
                if path.is_symlink() or any(part.startswith(".") for part in relative.parts):
                    continue
                if path.is_dir() or path.is_file():
                    tar.add(path, arcname=relative.as_posix(), recursive=False)
        return buffer.getvalue()

    def import_run(self, source: bytes | str | Path, run_id: str | None = None) -> dict[str, Any]:
        """Commit a finished run made elsewhere (an `export_run` tar, or a run folder) into this store, the
        way a local run is committed: assembled in full in a temporary folder inside the runs root, renamed
        into place under the run's lock (an older folder of the run is swapped out), then indexed. Returns
        its record. The archive is data: absolute paths, `..`, links and special files are refused, and
        nothing in it is executed or unpickled (result.json is read as JSON, the rest copied as bytes)."""
        staging = self.root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=staging, prefix="import-"))
        try:
            if isinstance(source, bytes):
                _unpack_run(source, staged)
            else:
                _copy_run(Path(source), staged)
            record = _staged_record(staged, run_id)
            with self.lock(record["run_id"]):
                final, old = self.run_dir(record["run_id"]), staging / f"{staged.name}.old"
                if final.exists():
                    os.replace(final, old)
                os.replace(staged, final)
                shutil.rmtree(old, ignore_errors=True)
                self._index_upsert([record])
            return record
        finally:
            shutil.rmtree(staged, ignore_errors=True)  # only left when the import failed

    def write_predictions(self, run_id: str, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_atomic(self.run_dir(run_id) / PREDICTIONS, text)

    def write_weights(self, run_id: str, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
        from safetensors.torch import save

        tensors = {k: v.contiguous() for k, v in tensors.items()}
        write_atomic(self.run_dir(run_id) / WEIGHTS, save(tensors, metadata=metadata))

    def write_result(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.run_dir(record["run_id"]) / RESULT, record)
        self._index_upsert([record])

    # --- index --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.root / INDEX, timeout=30)
        connection.execute(_CREATE_TABLE)
        return connection

    def _index_upsert(self, records: Iterable[dict[str, Any]]) -> None:
        rows = [_index_values(r) for r in records]
        try:
            with contextlib.closing(self._connect()) as db, db:
                db.executemany(_INSERT, rows)
        except sqlite3.DatabaseError as exc:  # the index is a cache: a broken one is rebuilt
            log.warning("run index %s unusable (%s); rebuilding it", self.root / INDEX, exc)
            self.rebuild_index()

    def rebuild_index(self) -> int:
        """Recreate index.sqlite from the run directories; returns the number of runs indexed."""
        path = self.root / INDEX
        tmp = path.with_name(".index.rebuild.sqlite")
        tmp.unlink(missing_ok=True)
        records = list(self.records())
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.execute(_CREATE_TABLE)
            db.executemany(_INSERT, [_index_values(r) for r in records])
        os.replace(tmp, path)
        return len(records)

    def query(self, **filters: Any) -> list[dict[str, Any]]:
        """Index rows matching column=value filters, rebuilding the index if it is missing or broken."""
        unknown = set(filters) - set(_INDEX_COLUMNS)
        if unknown:
            raise UsageError(f"unknown run field(s): {', '.join(sorted(unknown))}")
        if not (self.root / INDEX).is_file():
            self.rebuild_index()
        where = " AND ".join(f"{k} = ?" for k in filters) or "1"
        sql = f"SELECT {', '.join(_INDEX_COLUMNS)} FROM runs WHERE {where} ORDER BY created_at"
        try:
            with contextlib.closing(self._connect()) as db:
                rows = db.execute(sql, tuple(filters.values())).fetchall()
        except sqlite3.DatabaseError:
            self.rebuild_index()
            with contextlib.closing(self._connect()) as db:
                rows = db.execute(sql, tuple(filters.values())).fetchall()
        return [dict(zip(_INDEX_COLUMNS, row, strict=True)) for row in rows]


def _held_locks() -> set[str]:
    if not hasattr(_HELD, "paths"):
        _HELD.paths = set()
    return _HELD.paths


def _refuse(name: str, why: str) -> UsageError:
    return UsageError(f"refusing to import the run archive member {name!r}: {why}")


def _write_synced(path: Path, chunks: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        shutil.copyfileobj(chunks, out)
        out.flush()
        os.fsync(out.fileno())


def _unpack_run(data: bytes, target: Path) -> None:
    """Unpack a run archive member by member: only plain files and folders, only under `target`."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise _refuse(member.name, "absolute paths and '..' are not allowed")
                if member.isdir():
                    target.joinpath(*parts).mkdir(parents=True, exist_ok=True)
                elif member.isfile() and parts:
                    source = tar.extractfile(member)
                    assert source is not None
                    with source:
                        _write_synced(target.joinpath(*parts), source)
                else:
                    raise _refuse(member.name, "links and special files are not allowed")
    except tarfile.TarError as exc:
        raise UsageError(f"not a run archive: {exc}") from None


def _copy_run(source: Path, target: Path) -> None:
    """Copy a finished run folder (e.g. on a shared filesystem): plain files and folders only."""
    if not source.is_dir():
        raise UsageError(f"{source} is not a run folder")
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts):
            continue  # temporary files of an atomic write
        if path.is_symlink():
            raise _refuse(relative.as_posix(), "links are not allowed")
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            with open(path, "rb") as chunks:
                _write_synced(target / relative, chunks)
        else:
            raise _refuse(relative.as_posix(), "special files are not allowed")


def _staged_record(staged: Path, run_id: str | None) -> dict[str, Any]:
    """The record of a staged run, which must be a finished run (complete or failed) with a plain run id."""
    try:
        record = json.loads((staged / RESULT).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"the run archive has no {RESULT}: only finished runs are imported") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the run archive's {RESULT} is not valid JSON: {exc}") from None
    found = record.get("run_id") if isinstance(record, dict) else None
    if not isinstance(found, str) or not _RUN_ID.fullmatch(found):
        raise UsageError(f"the run archive's {RESULT} has no valid run id ({found!r})")
    if run_id is not None and found != run_id:
        raise UsageError(f"the run archive holds run {found}, not {run_id}")
    if record.get("status") not in ("complete", "failed"):
        raise UsageError(f"run {found} in the archive is not finished (status {record.get('status')!r})")
    return record


def _index_values(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get("primary" if c == "primary_value" else c) for c in _INDEX_COLUMNS)
