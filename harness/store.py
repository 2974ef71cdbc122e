"""Run records on disk: one directory per run, an SQLite index that can always be rebuilt from them.

Layout of `<runs_dir>/<run_id>/`: result.json (written last: a directory without it is an
unfinished run), predictions.jsonl, weights.safetensors, run.log. Every file is written atomically
(temporary file in the same folder, fsync, rename), so a crash never leaves a half-written record.
A run id is derived from its config hash, so the same configuration always maps to the same directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import RunFailed, UsageError, did_you_mean

SCHEMA_VERSION = 1
RESULT = "result.json"
PREDICTIONS = "predictions.jsonl"
WEIGHTS = "weights.safetensors"
LOG = "run.log"
INDEX = "index.sqlite"

log = logging.getLogger("harness")
_UMASK = os.umask(0)
os.umask(_UMASK)

_INDEX_COLUMNS = ("run_id", "config_hash", "status", "task", "task_version", "backbone", "adapt", "protocol",
                  "seed", "primary_metric", "primary_value", "created_at")
_CREATE_TABLE = f"CREATE TABLE IF NOT EXISTS runs ({', '.join(_INDEX_COLUMNS)}, PRIMARY KEY (run_id))"
_INSERT = f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(_INDEX_COLUMNS))})"


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
        run restarts cleanly. A second process asking for the same run while one holds it gets an error.
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
        """An exclusive, non-blocking lock on one run (running it, or adding explanations to it)."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{run_id}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunFailed(f"run {run_id} is already in progress in another process") from None
            yield

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


def _index_values(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get("primary" if c == "primary_value" else c) for c in _INDEX_COLUMNS)
