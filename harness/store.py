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
import shlex
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import AlreadyComplete, DamagedRecord, RunInProgress, UsageError, did_you_mean, first_line

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

# The index: one row per run folder with a result.json; a damaged record is a row with status "damaged" and the
# reason in `problem`. `signature` (the file's size, mtime and inode when it was read) lets a query re-read only
# the records that changed since. INDEX_VERSION changes with the layout: an older index is rebuilt.
_INDEX_COLUMNS = ("run_id", "config_hash", "status", "task", "task_version", "backbone", "adapt", "protocol",
                  "seed", "role", "primary_metric", "primary_value", "created_at", "problem")
INDEX_VERSION = 3
DAMAGED = "damaged"
_CREATE_TABLE = f"CREATE TABLE IF NOT EXISTS runs ({', '.join(_INDEX_COLUMNS)}, signature, PRIMARY KEY (run_id))"
_INSERT = f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * (len(_INDEX_COLUMNS) + 1))})"
_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"))
_RUN_ID = re.compile(r"(?!\.)[A-Za-z0-9._-]+")  # what make_run_id makes: one plain folder name
_HELD = threading.local()  # lock files this thread holds through RunStore.hold


def record_modality(record: dict[str, Any]) -> str | None:
    """A run's modality. Records from before it was stored: control runs are known by their RL protocol."""
    if record.get("modality"):
        return record["modality"]
    return "control" if "algo" in record.get("config", {}).get("protocol", {}) else None


# --- the run record (DESIGN.md section 4; written by harness.execution.base_record and execute) -------------
MAX_SEED = 2**32 - 1  # Python's, numpy's and gymnasium's seeding all take [0, 2**32 - 1]
RUN_STATUSES = ("complete", "failed")  # what a result.json says; a run still going has none


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def seed_problem(value: Any) -> str | None:
    """Why `value` is not a seed (an integer in [0, MAX_SEED]; a bool is not one), or None when it is."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        return f"a seed is an integer from 0 to {MAX_SEED} (2**32 - 1), not {_shown(value)}"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _numbers(value: Any, allow_null: bool = False) -> bool:
    return isinstance(value, dict) and all(_number(v) or (allow_null and v is None) for v in value.values())


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TEXT = ("a non-empty string", _text)
_EXPLANATION_KEYS = {"method", "unit", "target", "randomisation", "settings", "n_items", "faithfulness", "seconds"}
# field: (what it must be, the check). Every record has these; a complete one also has its primary metric.
RECORD_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "schema_version": ("an integer", _integer),
    "run_id": ("a run id (one plain folder name)", lambda v: isinstance(v, str) and bool(_RUN_ID.fullmatch(v))),
    "status": (" or ".join(RUN_STATUSES), lambda v: v in RUN_STATUSES),
    "task": _TEXT, "task_version": ("a string or an integer", lambda v: _text(v) or _integer(v)),
    "backbone": _TEXT, "adapt": _TEXT, "protocol": _TEXT,
    "seed": (f"an integer from 0 to {MAX_SEED}", lambda v: seed_problem(v) is None),
    "config": ("a table", lambda v: isinstance(v, dict)), "config_hash": _TEXT, "primary_metric": _TEXT,
    "metrics": ("a table of numbers", _numbers),
    "primary": ("a number (null while not complete)", lambda v: v is None or _number(v)),
    "n_examples": ("an integer", _integer),
    # numbers; records of harness 0.1 also kept the feature cache's "hit"/"miss" here (since 0.2 in `execution`)
    "timing": ("a table of numbers", lambda v: isinstance(v, dict)
               and all(_number(x) or x is None or isinstance(x, str) for x in v.values())),
    "env": ("a table", lambda v: isinstance(v, dict)),
    "created_at": _TEXT,
}
OPTIONAL_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "modality": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "backbone_ref": _TEXT, "backbone_source": ("a string", lambda v: isinstance(v, str)),
    "higher_is_better": ("true or false", lambda v: isinstance(v, bool)),
    "error": ("a string", lambda v: isinstance(v, str)),
    "execution": ("a table", lambda v: isinstance(v, dict)),
    "explanation": ("an explanation block", lambda v: isinstance(v, dict) and v.keys() >= _EXPLANATION_KEYS),
}


def record_problem(record: Any, folder: str | None = None) -> str | None:
    """What makes `record` not a valid run record (one line), or None when it is one. The one definition of a
    valid record: the store's readers (listing, show, reports, reuse of a complete run) all go through it.
    `folder`: the name of the run folder it was read from, which must be its run id."""
    if not isinstance(record, dict):
        return f"it holds a JSON {type(record).__name__}, not a run record (a JSON object)"
    missing = [k for k in RECORD_FIELDS if k not in record]
    problems = [f"it lacks {', '.join(repr(k) for k in missing)}"] if missing else []
    for fields in (RECORD_FIELDS, OPTIONAL_FIELDS):
        problems += [f"{k!r} must be {what}, not {_shown(record[k])}" for k, (what, ok) in fields.items()
                     if k in record and not ok(record[k])]
    if not problems:
        if record["schema_version"] > SCHEMA_VERSION:
            problems.append(f"it was written by a newer harness (schema_version {record['schema_version']}; "
                            f"this one reads up to {SCHEMA_VERSION})")
        if folder is not None and record["run_id"] != folder:
            problems.append(f"its run_id {record['run_id']!r} is not its folder's name {folder!r}")
        if record["status"] == "complete" and (record["primary"] is None
                                               or record["primary_metric"] not in record["metrics"]):
            problems.append(f"it is complete but lacks its primary metric {record['primary_metric']!r}")
    text = "; ".join(problems)
    return (text if len(text) <= 400 else text[:397] + "...") or None


def rerun_command(record: dict[str, Any]) -> str:
    """The command that makes a stored run again from scratch (its folder is replaced)."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    if config.get("tuning") or config.get("evaluated_on") == "dev":
        return _tune_command(record, config.get("tuning"))
    protocol, *variants = str(record.get("protocol")).split("+")  # "quick+bf16+compile": a derived protocol
    parts = ["harness", "run", "--task", record.get("task"), "--backbone",
             record.get("backbone_ref") or record.get("backbone"), "--adapt", record.get("adapt"),
             "--protocol", protocol, "--seed", record.get("seed")]
    if not all(isinstance(p, str | int) for p in parts):
        return ""
    parts += [flag for v in variants for flag in (["--compile"] if v == "compile" else ["--precision", v])]
    deterministic = isinstance(record.get("config"), dict) and record["config"].get("deterministic")
    return shlex.join([str(p) for p in parts] + ["--deterministic"] * bool(deterministic) + ["--force"])


def _tune_command(record: dict[str, Any], tuning: Any) -> str:
    """A tuned run (or a tuning trial) is made again by the `harness tune` that chose it; a damaged one is not
    complete, so tuning makes it again."""
    parts = ["harness", "tune", "--task", record.get("task"), "--backbone",
             record.get("backbone_ref") or record.get("backbone"), "--adapt", record.get("adapt"),
             "--protocol", record.get("protocol"), "--seeds", record.get("seed")]
    if not all(isinstance(p, str | int) for p in parts):
        return ""
    if isinstance(tuning, dict):
        parts += ["--tune-seeds", ",".join(map(str, tuning.get("seeds", [])))]
        parts += [f"--search={k}={','.join(map(str, v))}" for k, v in (tuning.get("space") or {}).items()]
    return shlex.join([str(p) for p in parts])


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

    def exists(self) -> bool:
        """Whether the runs directory exists. A missing one is an empty store (reading never creates it); a
        path that cannot be a runs directory (a file, a device, under /proc or /sys, unreadable) is a
        UsageError naming it."""
        try:
            resolved = self.root.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise UsageError(f"runs directory {self.root} cannot be resolved: {first_line(exc)}") from None
        for pseudo in _PSEUDO_FILESYSTEMS:
            if resolved == pseudo or pseudo in resolved.parents:
                raise UsageError(f"runs directory {self.root} is under {pseudo}, a kernel pseudo-filesystem: "
                                 "choose another --runs-dir (or $HARNESS_RUNS_DIR)")
        try:
            mode = os.stat(self.root).st_mode
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise UsageError(f"runs directory {self.root} cannot be read: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(mode):
            raise UsageError(f"runs directory {self.root} is {_file_kind(mode)}, not a directory: "
                             "choose another --runs-dir (or $HARNESS_RUNS_DIR)")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise UsageError(f"runs directory {self.root} cannot be read (permission denied)")
        return True

    def writable(self) -> bool:
        """Whether this process can write in the (existing) runs directory."""
        return self.exists() and os.access(self.root, os.W_OK | os.X_OK)

    def ensure_writable(self) -> None:
        """Create the runs directory if needed and check that this process can write in it: a UsageError naming
        the path otherwise, before any run is claimed."""
        if not self.exists():
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create the runs directory {self.root}: {exc.strerror or exc}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise UsageError(f"runs directory {self.root} is not writable: choose another --runs-dir "
                             "(or $HARNESS_RUNS_DIR)")

    def _read(self, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the run's result.json as a JSON object, None), (None, why it cannot be one), or (None, None)."""
        try:
            record = json.loads((self.run_dir(run_id) / RESULT).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, f"it is not valid JSON ({first_line(exc)})"
        except OSError as exc:
            return None, f"it cannot be read ({exc.strerror or exc})"
        if not isinstance(record, dict):
            return None, f"it holds a JSON {type(record).__name__}, not a run record (a JSON object)"
        return record, None

    def read_result(self, run_id: str) -> dict[str, Any] | None:
        """The run's result.json as a JSON object, not checked against the schema (see `examine`); None when
        there is none. DamagedRecord when it cannot be read, is not valid JSON, or is not an object."""
        record, problem = self._read(run_id)
        if problem is not None:
            raise DamagedRecord(f"run record {self.run_dir(run_id) / RESULT}: {problem}")
        return record

    def examine(self, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """(record, None) for a valid run record (see `record_problem`); (what could be read or None, the
        problem) for a damaged one; (None, None) when the run has no result.json."""
        record, problem = self._read(run_id)
        if problem is not None or record is None:
            return None, problem
        return record, record_problem(record, folder=run_id)

    def find_complete(self, run_id: str, digest: str) -> dict[str, Any] | None:
        """The run's record when it is a valid, complete run of this config hash; else None (a damaged record
        is reported and made again: claiming the run replaces its folder)."""
        record, problem = self.examine(run_id)
        if problem is not None:
            log.warning("run %s: its %s is damaged (%s); running it again", run_id, RESULT, problem)
            return None
        if record and record["status"] == "complete" and record["config_hash"] == digest:
            return record
        return None

    def run_ids(self) -> list[str]:
        """Every run folder with a result.json (valid or damaged); [] when the runs directory does not exist."""
        if not self.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / RESULT).is_file())

    def resolve_id(self, run_id: str) -> str:
        """An exact run id or an unambiguous prefix of one."""
        ids = self.run_ids()
        if run_id in ids:
            return run_id
        matches = [i for i in ids if i.startswith(run_id)] if run_id else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"run id prefix {run_id!r} is ambiguous: {', '.join(matches[:5])}")
        raise UsageError(f"no run {run_id!r} in {self.root}{did_you_mean(run_id, ids, list_known=False)}")

    def load(self, run_id: str) -> dict[str, Any]:
        """A valid run record by id or prefix; DamagedRecord (what is wrong, how to recover) for a damaged one."""
        run_id = self.resolve_id(run_id)
        record, problem = self.examine(run_id)
        if problem is not None or record is None:
            raise DamagedRecord(f"run {run_id} is damaged: {self.run_dir(run_id) / RESULT}: {problem}; "
                                + _recovery(record or {}, self.run_dir(run_id)))
        return record

    def scan(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """(every valid run record, (run id, problem) for every damaged one), in run id order."""
        records, damaged = [], []
        for run_id in self.run_ids():
            record, problem = self.examine(run_id)
            if problem is not None:
                damaged.append((run_id, problem))
            elif record is not None:
                records.append(record)
        return records, damaged

    def records(self) -> Iterator[dict[str, Any]]:
        """Every valid run record (damaged ones are left out: `scan` names them)."""
        yield from self.scan()[0]

    def read_predictions(self, run_id: str) -> list[dict[str, Any]]:
        """The run's per-example rows ({"id", "pred", "ref"}); DamagedRecord naming the file when it is missing
        or damaged."""
        run_id = self.resolve_id(run_id)
        path = self.run_dir(run_id) / PREDICTIONS
        try:
            with path.open(encoding="utf-8") as fh:
                return [_prediction_row(line, number) for number, line in enumerate(fh, 1) if line.strip()]
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else first_line(exc)
            raise DamagedRecord(f"run {run_id}: {path} is missing or damaged ({why}); "
                                + _recovery(self.read_result(run_id) or {}, self.run_dir(run_id))) from None

    def read_weights(self, run_id: str) -> dict[str, Any]:
        """The run's trained tensors (weights.safetensors, checked against the run's config hash); DamagedRecord
        naming the file and how to recover when it is missing, truncated or not the run's."""
        from safetensors import safe_open  # torch: only where weights are read

        record = self.load(run_id)
        path = self.run_dir(record["run_id"]) / WEIGHTS
        try:
            with safe_open(str(path), framework="pt") as fh:
                found = (fh.metadata() or {}).get("config_hash")
                tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (not a dict)
        except FileNotFoundError:
            problem = "it is missing"
        except Exception as exc:  # SafetensorError, OSError, ...: a truncated or random file
            problem = f"it cannot be read ({type(exc).__name__}: {first_line(exc)})"
        else:
            if found is None or found == record["config_hash"]:
                return tensors
            problem = f"it belongs to another run (config hash {found[:10]}, the run's is {record['config_hash'][:10]})"
        raise DamagedRecord(f"run {record['run_id']}: its weights file {path} is damaged: {problem}; "
                            + _recovery(record, self.run_dir(record["run_id"])))

    # --- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def claim(self, run_id: str, digest: str | None = None) -> Iterator[Path]:
        """Hold an exclusive lock on a run and give it a clean directory.

        A directory left without result.json (a killed run) or with a failed result is wiped, so the
        run restarts cleanly. With `digest`, a complete run of that config hash found once the lock is taken
        (another process finished it in the meantime) is never wiped: AlreadyComplete carries its record.
        A second process asking for the same run while one holds it gets RunInProgress.
        """
        with self.lock(run_id):
            if digest is not None:
                stored = self.find_complete(run_id, digest)
                if stored is not None:
                    raise AlreadyComplete(stored)
            directory = self.run_dir(run_id)
            if directory.exists():
                record, _ = self._read(run_id)
                finished = isinstance(record, dict) and record.get("status") == "complete"
                log.warning("removing the %s run directory %s before running it again",
                            "complete" if finished else "unfinished", directory)
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            yield directory

    @contextlib.contextmanager
    def lock(self, run_id: str, wait: bool = False) -> Iterator[None]:
        """An exclusive lock on one run (running it, or adding explanations to it). Taken while this thread
        holds the run through `hold`, it is that lock. Otherwise a lock held by another process is
        RunInProgress, or with `wait`, waited for (the holder's pid is named in the log).
        Every write to the store starts here (or in `import_run`): the runs directory is checked first."""
        self.ensure_writable()
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{run_id}.lock"
        if str(path.resolve()) in _held_locks():
            yield
            return
        with open(path, "a+", encoding="utf-8") as handle:  # "a+": opening never erases the holder's pid
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(path)
                if not wait:
                    raise RunInProgress(f"run {run_id} is already in progress in another process{holder}") from None
                log.warning("run %s is in progress in another process%s: waiting for it to finish "
                            "(--no-wait stops instead)", run_id, holder)
                fcntl.flock(handle, fcntl.LOCK_EX)  # Ctrl-C still interrupts the wait
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield

    @contextlib.contextmanager
    def hold(self, run_id: str, wait: bool = False) -> Iterator[None]:
        """Lock a run and keep the lock across this thread's later `claim`, `lock` or `import_run` of it: a
        runner re-checks that the run is still missing and then runs (or imports) it, with no gap in which
        another runner could finish it first. RunInProgress when another process holds it (unless `wait`)."""
        with self.lock(run_id, wait=wait):
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
        self.ensure_writable()
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
                self._index_upsert([record["run_id"]])
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
        self._index_upsert([record["run_id"]])

    # --- index --------------------------------------------------------------------------------
    def _signature(self, run_id: str) -> str | None:
        """The run's result.json as last written (size, mtime, inode: an atomic rewrite changes them)."""
        try:
            found = os.stat(self.run_dir(run_id) / RESULT)
        except OSError:
            return None
        return f"{found.st_size}:{found.st_mtime_ns}:{found.st_ino}"

    def _index_row(self, run_id: str) -> tuple[Any, ...] | None:
        """One run folder's index row, read now (the signature first: a change after it is seen next time)."""
        signature = self._signature(run_id)
        if signature is None:
            return None
        record, problem = self.examine(run_id)
        if problem is None and record is None:  # result.json went away meanwhile
            return None
        return (*_index_values(record or {}, run_id, problem), signature)

    def _connect(self) -> sqlite3.Connection:
        """The index, in this layout: an unusable or older index.sqlite is rebuilt first. Where this process
        cannot write the runs directory (a read-only copy), an index in memory."""
        if not self.writable():
            connection = sqlite3.connect(":memory:")
            connection.execute(_CREATE_TABLE)
            return connection
        try:
            return self._open_index()
        except _OlderIndex as exc:
            log.debug("run index %s: %s; rebuilding it", self.root / INDEX, exc)
        except sqlite3.DatabaseError as exc:
            log.warning("run index %s unusable (%s); rebuilding it", self.root / INDEX, first_line(exc))
        self.rebuild_index()
        return self._open_index()

    def _open_index(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.root / INDEX, timeout=30)
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version != INDEX_VERSION:
                if version or connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise _OlderIndex(f"layout {version}, this harness uses {INDEX_VERSION}")
                with connection:  # a new, empty file
                    connection.execute(_CREATE_TABLE)
                    connection.execute(f"PRAGMA user_version = {INDEX_VERSION}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _refresh(self, db: sqlite3.Connection) -> None:
        """Bring the index up to date with the run folders: re-read new and changed result.json files (by
        signature), drop rows of folders that went away."""
        indexed = dict(db.execute("SELECT run_id, signature FROM runs").fetchall())
        on_disk = {run_id: self._signature(run_id) for run_id in self.run_ids()}
        stale = [run_id for run_id, signature in on_disk.items() if signature and indexed.get(run_id) != signature]
        gone = [(run_id,) for run_id in indexed if not on_disk.get(run_id)]
        rows = [row for row in map(self._index_row, stale) if row is not None]
        if rows or gone:
            with db:
                db.executemany("DELETE FROM runs WHERE run_id = ?", gone)
                db.executemany(_INSERT, rows)

    def _index_upsert(self, run_ids: Iterable[str]) -> None:
        try:
            with contextlib.closing(self._connect()) as db, db:
                db.executemany(_INSERT, [row for row in map(self._index_row, run_ids) if row is not None])
        except sqlite3.DatabaseError as exc:  # the index is a cache: a broken one is rebuilt
            log.warning("run index %s unusable (%s); rebuilding it", self.root / INDEX, first_line(exc))
            self.rebuild_index()

    def rebuild_index(self) -> int:
        """Recreate index.sqlite from the run directories; returns the number of runs indexed (damaged
        records included, as status "damaged")."""
        self.ensure_writable()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{INDEX}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
            os.close(fd)
            rows = [row for row in map(self._index_row, self.run_ids()) if row is not None]
            with contextlib.closing(sqlite3.connect(tmp)) as db, db:
                db.execute(_CREATE_TABLE)
                db.execute(f"PRAGMA user_version = {INDEX_VERSION}")
                db.executemany(_INSERT, rows)
            os.replace(tmp, self.root / INDEX)
        except OSError as exc:  # e.g. a folder where index.sqlite should be
            raise UsageError(f"the run index {self.root / INDEX} cannot be rebuilt: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return len(rows)

    def query(self, **filters: Any) -> list[dict[str, Any]]:
        """Index rows matching column=value filters, the index first brought up to date with the run folders.
        Damaged records are rows with status "damaged" and the reason in "problem". A missing runs directory
        is an empty store (and is not created)."""
        unknown = set(filters) - set(_INDEX_COLUMNS)
        if unknown:
            raise UsageError(f"unknown run field(s): {', '.join(sorted(unknown))}")
        if not self.exists():
            return []
        where = " AND ".join(f"{k} = ?" for k in filters) or "1"
        sql = f"SELECT {', '.join(_INDEX_COLUMNS)} FROM runs WHERE {where} ORDER BY created_at, run_id"
        values = tuple(_sql_value(v) for v in filters.values())
        for attempt in (1, 2):
            try:
                with contextlib.closing(self._connect()) as db:
                    self._refresh(db)
                    rows = db.execute(sql, values).fetchall()
                break
            except sqlite3.DatabaseError as exc:
                if attempt == 2 or not self.writable():
                    raise UsageError(f"the run index {self.root / INDEX} cannot be used: {first_line(exc)}") from None
                log.warning("run index %s unusable (%s); rebuilding it", self.root / INDEX, first_line(exc))
                self.rebuild_index()
        return [dict(zip(_INDEX_COLUMNS, row, strict=True)) for row in rows]


class _OlderIndex(sqlite3.DatabaseError):
    """An index.sqlite of another layout (an older harness): rebuilt, quietly."""


def _prediction_row(line: str, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"line {number}: {first_line(exc)}") from None
    if not isinstance(row, dict) or not row.keys() >= {"id", "pred", "ref"}:
        raise ValueError(f"line {number} is not an object with id, pred and ref")
    return row


def _recovery(record: dict[str, Any], folder: Path) -> str:
    """How to get a sound run back in place of a damaged one: make it again (its folder is replaced)."""
    command = rerun_command(record)
    return (f"make the run again to replace it: {command}" if command
            else f"delete {folder} or make that run again with --force")


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a directory")


def _lock_holder(path: Path) -> str:
    """" (pid N)" from a lock file, for messages; "" when it names no process."""
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


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
    if record.get("status") not in RUN_STATUSES:
        raise UsageError(f"run {found} in the archive is not finished (status {record.get('status')!r})")
    problem = record_problem(record)
    if problem is not None:
        raise UsageError(f"the run archive's {RESULT} is not a valid run record: {problem}")
    return record


def _index_values(record: dict[str, Any], run_id: str, problem: str | None) -> tuple[Any, ...]:
    values = {c: record.get("primary" if c == "primary_value" else c) for c in _INDEX_COLUMNS}
    values |= {"run_id": run_id, "problem": problem} | ({"status": DAMAGED} if problem is not None else {})
    values["role"] = record.get("role", "test") if record else None  # "trial": a tuning trial, scored on dev
    return tuple(_sql_value(values[c]) for c in _INDEX_COLUMNS)


def _sql_value(value: Any) -> Any:
    """A value SQLite stores as it is (null, text, a float, a 64-bit integer); anything else (a seed past 2**63,
    a list or table in a damaged record) as its JSON text, so no record can make the index fail."""
    if value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return repr(value)
