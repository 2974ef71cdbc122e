"""A task file's data, read through Hugging Face `datasets`, turned into the harness's train/dev/test Examples.

Sources: local CSV / JSON Lines / Parquet files (`datasets`' packaged builders), an image folder tree
(`imagefolder`), a dataset saved with `save_to_disk`, a hub dataset id (online, or from the HF cache), and
folder trees of audio clips or text files, one folder per class. Audio and text trees are walked here and
made into a `datasets.Dataset` directly: `datasets`' `audiofolder` builder needs torchcodec (and FFmpeg)
even to list WAV files, and it has no builder for a tree of text documents.

The data fingerprint is the content of the files read (or of the hub dataset's cached Arrow files) plus
the task file's data settings, so changing either changes every run id.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

from harness.errors import UsageError, first_line, one_line
from harness.fingerprints import content_digests, files_fingerprint, tree_files, tree_fingerprint
from harness.splits import hash_split
from harness.task import Example
from harness.taskfiles.schema import FILE_FORMATS, SPLIT_NAMES, TaskFile

AUDIO_SUFFIXES = (".wav",)
TEXT_SUFFIXES = (".txt",)
SPLIT_FOLDERS = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation",
                 "test": "test"}


@dataclass(frozen=True)
class Row:
    """One example before the split: its id, input, reference and the content key that splits and dedupes it."""

    id: str
    input: Any
    target: Any
    key: str


def import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise UsageError("task files are read through Hugging Face datasets, which is not installed: "
                         "pip install 'harness[datasets]'") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return datasets


# --- opening the source -------------------------------------------------------------------------------
def open_source(tf: TaskFile) -> dict[str, Any]:
    """{source split name: datasets.Dataset}."""
    fmt = tf.data.format
    if fmt in FILE_FORMATS:
        return _load(tf, fmt, data_files=_data_files(tf))
    if fmt == "imagefolder":
        return _load(tf, "imagefolder", data_dir=str(_folder(tf)))
    if fmt in ("audiofolder", "textfolder"):
        return _walk_tree(tf)
    if fmt == "disk":
        return _load_from_disk(tf)
    return _load_hub(tf)


def _data_files(tf: TaskFile) -> dict[str, list[str]]:
    wanted = dict(tf.data.files) or {"train": str(tf.data.path)}
    found = {}
    for split, pattern in wanted.items():
        files = sorted(glob(pattern, recursive=True))
        if not files:
            raise UsageError(f"task '{tf.name}': no file matches {pattern} ({tf.path})")
        found[split] = files
    return found


def _folder(tf: TaskFile) -> Path:
    folder = tf.data.path
    if folder is None or not folder.is_dir():
        raise UsageError(f"task '{tf.name}': data folder {folder} does not exist ({tf.path})")
    return folder


def _load(tf: TaskFile, builder: str, **kwargs: Any) -> dict[str, Any]:
    datasets = import_datasets()
    try:
        loaded = datasets.load_dataset(builder, **kwargs)
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        cause = exc.__cause__ or exc
        raise UsageError(one_line(f"task '{tf.name}': {tf.data.describe()} cannot be read: "
                                  f"{type(cause).__name__}: {first_line(cause)}")) from None
    return dict(loaded)


def _load_from_disk(tf: TaskFile) -> dict[str, Any]:
    datasets = import_datasets()
    folder = _folder(tf)
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (OSError, ValueError) as exc:
        raise UsageError(one_line(f"task '{tf.name}': {folder} is not a dataset saved with save_to_disk "
                                  f"({first_line(exc)})")) from None
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def _load_hub(tf: TaskFile) -> dict[str, Any]:
    """The hub dataset, downloaded when the hub answers, else from the HF datasets cache; one line when neither."""
    from harness.assets import hub_offline, url_unreachable

    datasets = import_datasets()
    source = tf.data
    why_offline = "offline (HF_HUB_OFFLINE or HARNESS_OFFLINE is set)" if hub_offline() else None
    if why_offline is None:
        from huggingface_hub import constants

        why_offline = url_unreachable(f"{constants.ENDPOINT}/api/datasets/{source.dataset}")
    previous = datasets.config.HF_HUB_OFFLINE
    try:
        if why_offline is not None:  # the cache only: no retries against a hub that cannot answer
            datasets.config.HF_HUB_OFFLINE = True
        loaded = datasets.load_dataset(source.dataset, source.config, revision=source.revision)
    except Exception as exc:  # the library raises many kinds (ConnectionError, FileNotFoundError, ...)
        reason = why_offline and f"it is not in the Hugging Face datasets cache and the hub is {why_offline}"
        raise UsageError(one_line(f"task '{tf.name}': cannot load {source.describe()}: "
                                  f"{reason or f'{type(exc).__name__}: {first_line(exc)}'}")) from None
    finally:
        datasets.config.HF_HUB_OFFLINE = previous
    return dict(loaded)


def _walk_tree(tf: TaskFile) -> dict[str, Any]:
    """A folder per class (optionally under train/validation/test folders) of WAV clips or text files."""
    datasets = import_datasets()
    root = _folder(tf)
    audio = tf.data.format == "audiofolder"
    suffixes = AUDIO_SUFFIXES if audio else TEXT_SUFFIXES
    tops = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_split = {SPLIT_FOLDERS[t]: root / t for t in tops} if tops and set(tops) <= set(SPLIT_FOLDERS) else \
        {"train": root}
    column = tf.columns["audio" if audio else "text"]
    loaded = {}
    for split, folder in by_split.items():
        files = [f for f in tree_files(folder) if f.lower().endswith(suffixes) and "/" in f]
        if not files:
            raise UsageError(f"task '{tf.name}': {folder} holds no class folder with {'/'.join(suffixes)} files")
        values = [str(folder / f) if audio else _read_text(folder / f, tf.data.encoding) for f in files]
        loaded[split] = datasets.Dataset.from_dict({
            column: values, tf.columns["label"]: [f.split("/")[0] for f in files], "_file": files})
    return loaded


def _read_text(path: Path, encoding: str) -> str:
    # errors="replace": one badly encoded byte in a corpus must not stop a run (it becomes U+FFFD)
    return path.read_bytes().decode(encoding, errors="replace").strip()


# --- fingerprint ---------------------------------------------------------------------------------------
def source_fingerprint(tf: TaskFile) -> str:
    """"sha256:<hex>" of the files read plus the task file's data settings."""
    fmt = tf.data.format
    if fmt in FILE_FORMATS:
        content = files_fingerprint([Path(f) for files in _data_files(tf).values() for f in files])
    elif fmt == "hub":
        content = _hub_fingerprint(tf)
    else:
        content = tree_fingerprint(_folder(tf))
    return "sha256:" + hashlib.sha256(f"{content}\x00{tf.data_settings_digest()}".encode()).hexdigest()


def _hub_fingerprint(tf: TaskFile) -> str:
    loaded = open_source(tf)
    arrow = sorted({c["filename"] for ds in loaded.values() for c in ds.cache_files})
    if not arrow:  # a dataset held in memory only: its own fingerprint is all there is
        return ",".join(ds._fingerprint for ds in loaded.values())
    return files_fingerprint([Path(f) for f in arrow])


# --- rows and splits -------------------------------------------------------------------------------------
def read_rows(tf: TaskFile) -> tuple[dict[str, list[Example]], tuple[str, ...]]:
    """The three splits (each in a fixed order) and the label names in head order."""
    source = open_source(tf)
    prefix = len(source) > 1  # ids name their source split only where there are several
    rows = {name: list(_rows(tf, name, ds, prefix)) for name, ds in source.items()}
    splits = _assign(tf, rows)
    labels = _label_names(tf, source, splits)
    return {name: [Example(r.id, r.input, r.target) for r in part] for name, part in splits.items()}, labels


def _rows(tf: TaskFile, split: str, ds: Any, prefix: bool) -> Iterator[Row]:
    cols = tf.columns
    kind = tf.kind
    input_role = {"text-classification": "text", "token-classification": "tokens",
                  "image-classification": "image", "audio-classification": "audio"}[kind]
    target_role = "tags" if kind == "token-classification" else "label"
    for role in (input_role, target_role):
        if cols[role] not in ds.column_names:
            raise UsageError(f"task '{tf.name}': column '{cols[role]}' ({role}) is not in the data's {split} split "
                             f"(columns: {', '.join(ds.column_names)}); set it under [columns] in {tf.path}")
    if "id" in cols and cols["id"] not in ds.column_names:
        raise UsageError(f"task '{tf.name}': id column '{cols['id']}' is not in the data's {split} split")
    ds = _undecoded(ds, cols[input_role], kind)
    inputs = ds[cols[input_role]]
    targets = _target_names(ds, cols[target_role], tf)
    ids = ds[cols["id"]] if "id" in cols else ds["_file"] if "_file" in ds.column_names else range(len(ds))
    clip_keys = _clip_keys(tf, inputs)
    for n, (raw_id, value, target) in enumerate(zip(ids, inputs, targets, strict=True)):
        example_input, key = _input(tf, value, n, split, clip_keys)
        row_id = str(raw_id) if "id" in cols else f"{split}/{raw_id}" if prefix else str(raw_id)
        yield Row(row_id, example_input, target, key)


def _undecoded(ds: Any, column: str, kind: str) -> Any:
    """Images and audio as {path, bytes}: decoded here (PIL) or by the harness's WAV reader, not by `datasets`
    (whose audio decoding needs torchcodec)."""
    datasets = import_datasets()
    feature = ds.features.get(column)
    if kind == "image-classification" and isinstance(feature, datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    if kind == "audio-classification" and isinstance(feature, datasets.Audio):
        return ds.cast_column(column, datasets.Audio(decode=False))
    return ds


def _target_names(ds: Any, column: str, tf: TaskFile) -> list[Any]:
    """References as label names: integer class ids are named by the column's ClassLabel."""
    datasets = import_datasets()
    feature = ds.features[column]
    values = ds[column]
    inner = getattr(feature, "feature", None)  # a Sequence / List of labels (token classification)
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(int(v)) for v in values]
    if isinstance(inner, datasets.ClassLabel):
        return [[inner.int2str(int(v)) for v in seq] for seq in values]
    if tf.kind == "token-classification":
        if not all(isinstance(seq, list) for seq in values):
            raise UsageError(f"task '{tf.name}': column '{column}' must hold a list of tags per row")
        return [[str(v) for v in seq] for seq in values]
    missing = next((n for n, v in enumerate(values) if v is None or v == ""), None)
    if missing is not None:
        raise UsageError(f"task '{tf.name}': row {missing} has no label in column '{column}' ({tf.path})")
    return [str(v) for v in values]


def _local_file(value: Any) -> str | None:
    path = value if isinstance(value, str) else value.get("path") if isinstance(value, Mapping) else None
    return str(path) if path and os.path.isfile(path) else None


def _clip_keys(tf: TaskFile, inputs: Sequence[Any]) -> dict[str, str]:
    """The content digests of the clips that are local files, from the per-file digest cache: the loop reads
    the clips when it batches them, so loading a split does not read them all again."""
    if tf.kind != "audio-classification":
        return {}
    paths = list(dict.fromkeys(p for p in map(_local_file, inputs) if p))
    return dict(zip(paths, content_digests([Path(p) for p in paths], f"task '{tf.name}' clips"), strict=True))


def _input(tf: TaskFile, value: Any, n: int, split: str, clip_keys: Mapping[str, str]) -> tuple[Any, str]:
    """The Example input and the content key it is split and de-duplicated by."""
    kind = tf.kind
    if kind == "text-classification":
        if not isinstance(value, str):
            raise UsageError(f"task '{tf.name}': row {n} of {split} has no text ({value!r})")
        return value, value
    if kind == "token-classification":
        words = [str(w) for w in value]
        return words, " ".join(words)
    if kind == "audio-classification" and (local := _local_file(value)):
        return local, clip_keys[local]
    data = _media_bytes(tf, value, n, split)
    key = hashlib.sha256(data).hexdigest()
    if kind == "image-classification":
        return _decode_image(tf, data, n, split), key
    return _cached_clip(tf, data, key), key


def _media_bytes(tf: TaskFile, value: Any, n: int, split: str) -> bytes:
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path") and os.path.isfile(value["path"]):
            return Path(value["path"]).read_bytes()
    raise UsageError(f"task '{tf.name}': row {n} of {split} holds no readable file ({str(value)[:80]})")


def _decode_image(tf: TaskFile, data: bytes, n: int, split: str) -> Any:
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image if image.mode == "L" else image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"task '{tf.name}': row {n} of {split} is not a readable image ({exc})") from None


def _cached_clip(tf: TaskFile, data: bytes, key: str) -> str:
    """A clip held as bytes (a hub dataset), written once to the cache as the WAV file the harness reader opens."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UsageError(f"task '{tf.name}': audio must be 16-bit PCM WAV (decoding other formats needs "
                         "torchcodec, which the harness does not use)")
    from harness.fingerprints import cache_root

    target = cache_root() / "data" / "clips" / f"{key}.wav"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return str(target)


def _deduplicate(rows: Iterable[Row]) -> list[Row]:
    """The first copy of each input; inputs whose copies disagree on the reference are dropped entirely."""
    first: dict[str, Row] = {}
    conflicting: set[str] = set()
    for row in rows:
        seen = first.setdefault(row.key, row)
        if seen is not row and seen.target != row.target:
            conflicting.add(row.key)
    return [r for k, r in first.items() if k not in conflicting]


def _assign(tf: TaskFile, rows: Mapping[str, list[Row]]) -> dict[str, list[Row]]:
    plan = tf.splits
    if plan.fractions:
        everything = [r for part in rows.values() for r in part]
        if plan.deduplicate:
            everything = _deduplicate(everything)
        parts = hash_split(everything, key=lambda r: r.key, salt=plan.salt,
                           fractions=tuple((s, plan.fractions[s]) for s in SPLIT_NAMES))
    else:
        parts = {}
        for split, source_name in plan.names.items():
            if source_name not in rows:
                raise UsageError(f"task '{tf.name}': the data has no split '{source_name}' for {split} "
                                 f"(it has {', '.join(rows)}); set [splits] in {tf.path}")
            parts[split] = _deduplicate(rows[source_name]) if plan.deduplicate else list(rows[source_name])
        if plan.dev_from_train is not None:
            share = plan.dev_from_train
            carved = hash_split(parts["train"], key=lambda r: r.key, salt=plan.salt,
                                fractions=(("train", 1 - share), ("dev", share)))
            parts["train"], parts["dev"] = carved["train"], carved["dev"]
    for split in SPLIT_NAMES:
        if not parts.get(split):
            raise UsageError(f"task '{tf.name}': the {split} split is empty ({tf.path})")
    _check_unique_ids(tf, parts)
    return {s: parts[s] for s in SPLIT_NAMES}


def _check_unique_ids(tf: TaskFile, parts: Mapping[str, Sequence[Row]]) -> None:
    seen: set[str] = set()
    for part in parts.values():
        for row in part:
            if row.id in seen:
                raise UsageError(f"task '{tf.name}': example id '{row.id}' occurs twice; ids must be unique "
                                 f"(set [columns] id to a unique column, or leave it out)")
            seen.add(row.id)


def _label_names(tf: TaskFile, source: Mapping[str, Any], splits: Mapping[str, list[Row]]) -> tuple[str, ...]:
    used = {t for part in splits.values() for r in part for t in (r.target if tf.kind == "token-classification"
                                                                  else [r.target])}
    if tf.label_order == "listed":
        unknown = sorted(used - set(tf.labels))
        if unknown:
            raise UsageError(f"task '{tf.name}': label '{unknown[0]}' is in the data but not in labels "
                             f"{list(tf.labels)} ({tf.path})" + (f" (and {len(unknown) - 1} more)"
                                                                if len(unknown) > 1 else ""))
        return tf.labels
    if tf.label_order == "dataset":
        return _dataset_label_order(tf, source, used)
    return tuple(sorted(used))


def _dataset_label_order(tf: TaskFile, source: Mapping[str, Any], used: set[str]) -> tuple[str, ...]:
    datasets = import_datasets()
    column = tf.columns["tags" if tf.kind == "token-classification" else "label"]
    for ds in source.values():
        feature = ds.features.get(column)
        feature = getattr(feature, "feature", feature)
        if isinstance(feature, datasets.ClassLabel):
            return tuple(feature.names)
    raise UsageError(f"task '{tf.name}': labels = \"dataset\" needs a ClassLabel column '{column}'; "
                     "list the labels or use labels = \"sorted\"")
