"""A checked `TaskFile` made into a task class on the kind's own base: the same class a Python plugin would
write, so leaderboards, reports, compare, explain and the frozen-feature cache treat it like any other task.

Each kind brings its default protocols (the built-in tasks' recipes for that modality); a task file
overrides any field of any of them, and `inputs` key by key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar

from harness.errors import one_line
from harness.protocol import SEARCH_AUDIO, SEARCH_IMAGE, SEARCH_SMOKE, SEARCH_TEXT, TrainingProtocol, protocol_table
from harness.task import Example, TaskSpec
from harness.taskfiles.schema import TaskFile, TaskFileError

# The recipe each kind starts from (the built-in text, NER, image and audio tasks' own).
KIND_PROTOCOLS: dict[str, dict[str, TrainingProtocol]] = {
    "text-classification": protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-4, train_limit=64, dev_limit=32, test_limit=64,
                               inputs={"max_length": 64}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=2, batch_size=32, lr=1e-4, head_lr=1e-3, train_limit=4000,
                               dev_limit=1000, inputs={"max_length": 128}, search=SEARCH_TEXT),
        standard=TrainingProtocol(epochs=3, batch_size=32, lr=5e-5, head_lr=1e-3, inputs={"max_length": 256},
                                  search=SEARCH_TEXT),
    ),
    "token-classification": protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-4, train_limit=64, dev_limit=32, test_limit=32,
                               inputs={"max_length": 64}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=3, batch_size=16, lr=1e-4, head_lr=2e-3, inputs={"max_length": 96},
                               search=SEARCH_TEXT),
        standard=TrainingProtocol(epochs=10, batch_size=32, lr=5e-5, head_lr=1e-3, inputs={"max_length": 128},
                                  search=SEARCH_TEXT),
    ),
    "image-classification": protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-3, train_limit=64, dev_limit=32, test_limit=64,
                               inputs={"image_size": 32}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=2, batch_size=32, lr=1e-3, train_limit=3000, dev_limit=500,
                               inputs={"image_size": 128}, search=SEARCH_IMAGE),
        standard=TrainingProtocol(epochs=10, batch_size=64, lr=3e-4, inputs={"image_size": 224}, search=SEARCH_IMAGE),
    ),
    "audio-classification": protocol_table(
        smoke=TrainingProtocol(epochs=2, batch_size=16, head_lr=3e-3, layer_mix="weighted", train_limit=64,
                               dev_limit=32, test_limit=64, inputs={"clip_seconds": 1.0}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=30, batch_size=32, head_lr=3e-3, weight_decay=0.0, layer_mix="weighted",
                               inputs={"clip_seconds": 1.0}, search=SEARCH_AUDIO),
        standard=TrainingProtocol(epochs=20, batch_size=32, lr=5e-5, layer_mix="weighted",
                                  inputs={"clip_seconds": 1.0}, search=SEARCH_AUDIO),
    ),
}


def kind_base(kind: str) -> type:
    if kind == "text-classification":
        from harness.text_tasks import SequenceClassificationTask
        return SequenceClassificationTask
    if kind == "token-classification":
        from harness.text_tasks import TokenClassificationTask
        return TokenClassificationTask
    if kind == "image-classification":
        from harness.image_tasks import ImageClassificationTask
        return ImageClassificationTask
    from harness.audio_tasks import AudioClassificationTask
    return AudioClassificationTask


def protocols_for(tf: TaskFile) -> dict[str, TrainingProtocol]:
    table = {}
    for name, default in KIND_PROTOCOLS[tf.kind].items():
        changes = dict(tf.protocols.get(name, {}))
        if "inputs" in changes:
            changes["inputs"] = dict(default.inputs) | dict(changes["inputs"])
        try:
            table[name] = default.with_changes(**changes)
        except (TypeError, ValueError) as exc:
            raise TaskFileError(one_line(f"task file {tf.path} [protocols.{name}]: {exc}")) from None
        _check_types(tf, name, table[name], changes)
    return table


def _check_types(tf: TaskFile, name: str, protocol: TrainingProtocol, changes: Mapping[str, Any]) -> None:
    """TOML gives ints, floats, strings and booleans: each overridden field must have its default's type."""
    expected = {f.name: f.type for f in fields(TrainingProtocol)}
    for key, value in changes.items():
        kind = str(expected[key])
        ok = {"int": isinstance(value, int) and not isinstance(value, bool) and value >= (1 if key in (
                  "epochs", "batch_size", "eval_batch_size") else 0),
              "float": isinstance(value, int | float) and not isinstance(value, bool) and value >= 0,
              "str": isinstance(value, str), "bool": isinstance(value, bool),
              "int | None": value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1),
              }.get(kind, True)
        if not ok:
            raise TaskFileError(f"task file {tf.path} [protocols.{name}.{key}]: {value!r} is not a valid "
                                f"{kind.replace(' | None', '')}")


def metric_specs(tf: TaskFile, base: type) -> tuple[Any, ...]:
    computed = {m.name: m for m in base.metrics}
    if not tf.metrics:
        return tuple(base.metrics)
    for name in tf.metrics:
        if name not in computed:
            raise TaskFileError(f"task file {tf.path} [metrics]: a {tf.kind} task computes "
                                f"{', '.join(computed)}, not '{name}'")
    return tuple(computed[n] for n in tf.metrics)


class TaskFileTask:
    """What every task-file class adds to its kind's base: data read through `datasets`, labels listed or
    read from the data, the data fingerprint of the files plus the file's data settings."""

    task_file: ClassVar[TaskFile]

    def data_fingerprint(self) -> str:
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            from harness.taskfiles.sources import source_fingerprint

            cached = self._fingerprint = source_fingerprint(self.task_file)
        return cached

    def read_splits(self) -> dict[str, list[Example]]:
        return self._read()[0]

    @property
    def label_names(self) -> Sequence[str]:  # type: ignore[override]
        if self.task_file.label_order == "listed":
            return self.task_file.labels
        return self._read()[1]

    def _read(self) -> tuple[dict[str, list[Example]], tuple[str, ...]]:
        cached = self.__dict__.get("_rows")
        if cached is None:
            from harness.taskfiles.sources import read_rows

            cached = self._rows = read_rows(self.task_file)
        return cached


def build_task_class(tf: TaskFile) -> type:
    """The task class a task file declares."""
    base = kind_base(tf.kind)
    spec = TaskSpec(
        name=tf.name, version=tf.version, default_backbone=tf.default_backbone, metrics=metric_specs(tf, base),
        description=tf.description, license=tf.license, citation=tf.citation,
        data_sources=(f"task file {tf.path}: {tf.data.describe()}",),
        default_protocol=tf.default_protocol, default_adapt=tf.default_adapt)
    protocols = protocols_for(tf)
    if tf.default_protocol not in protocols:
        raise TaskFileError(f"task file {tf.path} [default_protocol]: unknown protocol '{tf.default_protocol}'")
    title = "".join(part.capitalize() for part in tf.name.replace(".", "-").replace("_", "-").split("-"))
    attrs = {"spec": spec, "protocols": protocols, "task_file": tf, "__module__": __name__,
             "__doc__": f"{tf.description} (task file {tf.path})"}
    return type(f"{title}TaskFile", (TaskFileTask, base), attrs)
