"""Task files: a supervised task declared in TOML, parsed and checked into a `TaskFile` (no data read here).

Everything a task file may hold is checked at load with one line naming the file and the field, so a
typo never surfaces later as a KeyError in the first batch. Torch-free and `datasets`-free: `harness list`
parses every task file it finds.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import UsageError, did_you_mean, one_line

KINDS = ("text-classification", "token-classification", "image-classification", "audio-classification")
KIND_ALIASES = {"sequence-classification": "text-classification"}
FILE_FORMATS = ("csv", "json", "parquet")  # read by `datasets`' packaged builders
FOLDER_FORMATS = ("imagefolder", "audiofolder", "textfolder")  # one folder per class
FORMATS = (*FILE_FORMATS, *FOLDER_FORMATS, "hub", "disk")
SPLIT_NAMES = ("train", "dev", "test")
LABEL_ORDERS = ("sorted", "dataset")  # labels read from the data: sorted names, or the dataset's ClassLabel order
# The columns each kind reads, and their default names (a task file may rename any).
KIND_COLUMNS: dict[str, dict[str, str]] = {
    "text-classification": {"text": "text", "label": "label"},
    "token-classification": {"tokens": "tokens", "tags": "tags"},
    "image-classification": {"image": "image", "label": "label"},
    "audio-classification": {"audio": "audio", "label": "label"},
}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
TOP_KEYS = ("name", "version", "kind", "description", "license", "citation", "default_backbone",
            "default_adapt", "default_protocol", "metrics", "labels", "data", "columns", "splits", "protocols")


@dataclass(frozen=True)
class DataSource:
    """Where the examples come from. `path` is absolute once parsed (relative paths are taken from the task
    file's folder, or from the installed files of `package`)."""

    format: str
    path: Path | None = None  # a file, a glob, or a folder (files / folder trees / disk)
    files: Mapping[str, str] = field(default_factory=dict)  # source split -> file or glob (files formats)
    dataset: str = ""  # hub dataset id
    config: str | None = None  # hub dataset configuration
    revision: str | None = None  # hub revision (a tag, branch or commit)
    encoding: str = "utf-8"  # textfolder files

    def describe(self) -> str:
        if self.format == "hub":
            return f"hub dataset {self.dataset}" + (f" ({self.config})" if self.config else "")
        if self.files:
            return f"{self.format} files " + ", ".join(f"{k}={v}" for k, v in self.files.items())
        return f"{self.format} {self.path}"


@dataclass(frozen=True)
class SplitPlan:
    """How the source's rows become train/dev/test: named source splits, or content-hash fractions."""

    names: Mapping[str, str] = field(default_factory=dict)  # harness split -> source split name
    fractions: Mapping[str, float] = field(default_factory=dict)  # harness split -> share of all rows
    dev_from_train: float | None = None  # dev carved out of the train source split by content hash
    salt: str = ""
    deduplicate: bool = False


@dataclass(frozen=True)
class TaskFile:
    path: Path
    name: str
    version: str
    kind: str
    description: str
    license: str
    citation: str
    default_backbone: str
    default_adapt: str
    default_protocol: str
    metrics: tuple[str, ...]  # empty: everything the kind computes
    labels: tuple[str, ...]  # empty when read from the data
    label_order: str  # "listed", "sorted" or "dataset"
    data: DataSource
    columns: Mapping[str, str]  # role -> column name ("id" optional)
    splits: SplitPlan
    protocols: Mapping[str, Mapping[str, Any]]  # protocol name -> field overrides
    raw: Mapping[str, Any]

    def data_settings_digest(self) -> str:
        """What in the file decides which examples and labels a run sees: part of the data fingerprint."""
        chosen = {k: self.raw.get(k) for k in ("kind", "labels", "data", "columns", "splits")}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()


class TaskFileError(UsageError):
    """A task file that cannot be used, with the file and the field named."""


def _fail(path: Path, where: str, problem: str) -> NoReturn:
    at = f" [{where}]" if where else ""
    raise TaskFileError(one_line(f"task file {path}{at}: {problem}"))


def read_task_file(path: str | Path) -> TaskFile:
    """Parse and check a task file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskFileError(f"task file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(one_line(f"task file {path} cannot be read: {exc}")) from None
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(one_line(f"task file {path} is not valid TOML: {exc}")) from None
    return parse_task_file(raw, path)


def parse_task_file(raw: Mapping[str, Any], path: Path) -> TaskFile:
    for key in raw:
        if key not in TOP_KEYS:
            _fail(path, key, f"unknown key{did_you_mean(key, TOP_KEYS)}")
    name = _text(raw, "name", path, required=True)
    if not NAME_PATTERN.match(name):
        _fail(path, "name", f"{name!r} must be lower-case letters, digits, '.', '_' or '-'")
    kind = KIND_ALIASES.get(_text(raw, "kind", path, required=True), raw["kind"])
    if kind not in KINDS:
        _fail(path, "kind", f"unknown kind {kind!r}{did_you_mean(kind, KINDS)}")
    labels, order = _labels(raw.get("labels", "sorted"), path)
    metrics = _strings(raw.get("metrics", []), path, "metrics")
    return TaskFile(
        path=path, name=name, version=_text(raw, "version", path, required=True), kind=kind,
        description=_text(raw, "description", path, required=True), license=_text(raw, "license", path),
        citation=_text(raw, "citation", path),
        default_backbone=_text(raw, "default_backbone", path) or _default_backbone(kind),
        default_adapt=_text(raw, "default_adapt", path) or ("frozen" if kind == "audio-classification" else "full"),
        default_protocol=_text(raw, "default_protocol", path) or "quick",
        metrics=metrics, labels=labels, label_order=order,
        data=_data(_table(raw, "data", path, required=True), path),
        columns=_columns(_table(raw, "columns", path), kind, path),
        splits=_splits(_table(raw, "splits", path), path),
        protocols=_protocols(_table(raw, "protocols", path), path),
        raw=raw,
    )


def _default_backbone(kind: str) -> str:
    return {"image-classification": "efficientnet-lite0", "audio-classification": "whisper-tiny-en"}.get(kind, "minilm")


def _text(raw: Mapping[str, Any], key: str, path: Path, required: bool = False) -> str:
    value = raw.get(key)
    if value is None:
        if required:
            _fail(path, key, "missing (required)")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        _fail(path, key, f"must be a non-empty string, not {value!r}")
    return value


def _strings(value: Any, path: Path, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _fail(path, where, f"must be a list of non-empty strings, not {value!r}")
    if len(set(value)) != len(value):
        _fail(path, where, "lists a name twice")
    return tuple(value)


def _table(raw: Mapping[str, Any], key: str, path: Path, required: bool = False) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            _fail(path, key, "missing (required)")
        return {}
    if not isinstance(value, dict):
        _fail(path, key, f"must be a table, not {value!r}")
    return value


def _labels(value: Any, path: Path) -> tuple[tuple[str, ...], str]:
    if isinstance(value, str):
        if value not in LABEL_ORDERS:
            _fail(path, "labels", f"a list of label names, or {' or '.join(map(repr, LABEL_ORDERS))} to read "
                                  f"them from the data, not {value!r}")
        return (), value
    labels = _strings(value, path, "labels")
    if not labels:
        _fail(path, "labels", "lists no label")
    return labels, "listed"


def _allowed(table: Mapping[str, Any], allowed: tuple[str, ...], path: Path, where: str) -> None:
    for key in table:
        if key not in allowed:
            _fail(path, f"{where}.{key}", f"unknown key{did_you_mean(key, allowed)}")


def _data(table: Mapping[str, Any], path: Path) -> DataSource:
    _allowed(table, ("format", "path", "files", "dataset", "config", "revision", "encoding", "package"),
             path, "data")
    fmt = _text(table, "format", path, required=True)
    if fmt not in FORMATS:
        _fail(path, "data.format", f"unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}")
    root = _root(path, _text(table, "package", path) or None)
    if fmt == "hub":
        dataset = _text(table, "dataset", path)
        if not dataset:
            _fail(path, "data.dataset", "a hub source names its dataset id (e.g. 'stanfordnlp/imdb')")
        return DataSource(format=fmt, dataset=dataset, config=_text(table, "config", path) or None,
                          revision=_text(table, "revision", path) or None)
    for key in ("dataset", "config", "revision"):
        if key in table:
            _fail(path, f"data.{key}", f"only a hub source takes '{key}'")
    files = table.get("files")
    if files is not None:
        if fmt not in FILE_FORMATS:
            _fail(path, "data.files", f"'files' (one file per source split) is for {', '.join(FILE_FORMATS)}")
        if not isinstance(files, dict) or not files or not all(isinstance(v, str) and v for v in files.values()):
            _fail(path, "data.files", "must be a table of source split = file (or glob)")
        return DataSource(format=fmt, files={k: str(root / v) for k, v in files.items()})
    where = _text(table, "path", path)
    if not where:
        _fail(path, "data.path", f"a {fmt} source needs a path (a file, glob or folder)")
    encoding = _text(table, "encoding", path) or "utf-8"
    return DataSource(format=fmt, path=root / where, encoding=encoding)


def _root(path: Path, package: str | None) -> Path:
    """Where the file's data paths start: its own folder, or the installed files of `package`."""
    if package is None:
        return path.parent.resolve()
    from harness.assets import packaged_data_dir

    try:
        return packaged_data_dir(package, package.replace("-", "_"))
    except UsageError as exc:
        raise TaskFileError(one_line(f"task file {path} [data.package]: {exc}")) from None


def _columns(table: Mapping[str, Any], kind: str, path: Path) -> dict[str, str]:
    roles = KIND_COLUMNS[kind]
    _allowed(table, (*roles, "id"), path, "columns")
    columns = dict(roles)
    for role, column in table.items():
        if not isinstance(column, str) or not column:
            _fail(path, f"columns.{role}", f"must be a column name, not {column!r}")
        columns[role] = column
    return columns


def _splits(table: Mapping[str, Any], path: Path) -> SplitPlan:
    _allowed(table, (*SPLIT_NAMES, "fractions", "salt", "deduplicate"), path, "splits")
    dedupe = table.get("deduplicate", False)
    if not isinstance(dedupe, bool):
        _fail(path, "splits.deduplicate", f"must be true or false, not {dedupe!r}")
    salt = _text(table, "salt", path)
    fractions = table.get("fractions")
    if fractions is not None:
        if any(k in table for k in SPLIT_NAMES):
            _fail(path, "splits", "give either source split names or fractions, not both")
        if not isinstance(fractions, dict) or set(fractions) != set(SPLIT_NAMES):
            _fail(path, "splits.fractions", "must give train, dev and test their shares, e.g. "
                                            "{ train = 0.8, dev = 0.1, test = 0.1 }")
        if not all(isinstance(v, int | float) and 0 < v < 1 for v in fractions.values()) \
                or abs(sum(fractions.values()) - 1) > 1e-9:
            _fail(path, "splits.fractions", f"shares must lie between 0 and 1 and sum to 1, not {fractions}")
        if not salt:
            _fail(path, "splits.salt", "hash-split data needs a salt (any string; change it to draw new splits)")
        return SplitPlan(fractions={k: float(fractions[k]) for k in SPLIT_NAMES}, salt=salt, deduplicate=dedupe)
    names, dev_share = {}, None
    for split in SPLIT_NAMES:
        value = table.get(split, {"dev": "validation"}.get(split, split))
        if split == "dev" and isinstance(value, dict):
            _allowed(value, ("from", "fraction"), path, "splits.dev")
            share = value.get("fraction")
            if value.get("from", "train") != "train" or not isinstance(share, int | float) or not 0 < share < 1:
                _fail(path, "splits.dev", "carve dev out of train as { from = \"train\", fraction = 0.1 }")
            if not salt:
                _fail(path, "splits.salt", "a dev split carved from train needs a salt")
            dev_share = float(share)
            continue
        if not isinstance(value, str) or not value:
            _fail(path, f"splits.{split}", f"must name a split of the source, not {value!r}")
        names[split] = value
    return SplitPlan(names=names, dev_from_train=dev_share, salt=salt, deduplicate=dedupe)


def _protocols(table: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    from harness.protocol import PROTOCOL_NAMES, TrainingProtocol

    settable = tuple(f.name for f in fields(TrainingProtocol) if f.name not in ("name", "_"))
    overrides: dict[str, dict[str, Any]] = {}
    for name, changes in table.items():
        if name not in PROTOCOL_NAMES:
            _fail(path, f"protocols.{name}", f"unknown protocol{did_you_mean(name, PROTOCOL_NAMES)}")
        if not isinstance(changes, dict):
            _fail(path, f"protocols.{name}", "must be a table of protocol fields")
        _allowed(changes, settable, path, f"protocols.{name}")
        if "inputs" in changes and not isinstance(changes["inputs"], dict):
            _fail(path, f"protocols.{name}.inputs", "must be a table, e.g. { max_length = 256 }")
        overrides[name] = dict(changes)
    return overrides
