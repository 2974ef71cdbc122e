"""`harness new-task NAME --kind KIND`: a task plugin distribution that installs and passes `harness validate`
before its author changes a line.

It writes a pyproject with the `harness.tasks` entry point, a task module on the kind's base class with
every hook documented, a tiny generated example data set inside the package (so it really runs, offline,
on the kind's packaged default backbone), a pytest file that runs the same checks as `harness validate`,
and a README. Nothing is overwritten: an existing folder is an error.
"""

from __future__ import annotations

import json
import random
import re
import struct
import wave
from pathlib import Path
from string import Template

from harness.errors import UsageError
from harness.taskfiles.schema import KINDS, NAME_PATTERN

BASES = {
    "text-classification": ("harness.text_tasks", "SequenceClassificationTask"),
    "token-classification": ("harness.text_tasks", "TokenClassificationTask"),
    "image-classification": ("harness.image_tasks", "ImageClassificationTask"),
    "audio-classification": ("harness.audio_tasks", "AudioClassificationTask"),
}
BACKBONES = {"text-classification": "minilm", "token-classification": "minilm",
             "image-classification": "efficientnet-lite0", "audio-classification": "whisper-tiny-en"}
LABELS = {"text-classification": ("negative", "positive"), "token-classification": ("O", "B-CITY", "I-CITY"),
          "image-classification": ("dark", "light"), "audio-classification": ("high", "low")}
INPUTS = {"text-classification": '{"max_length": 64}', "token-classification": '{"max_length": 64}',
          "image-classification": '{"image_size": 64}', "audio-classification": '{"clip_seconds": 0.5}'}


def scaffold(name: str, kind: str, parent: Path) -> Path:
    """Create the distribution folder `harness-task-NAME` under `parent`; returns it."""
    if not NAME_PATTERN.match(name) or not re.fullmatch(r"[a-z0-9-]+", name):
        raise UsageError(f"task name {name!r} must be lower-case letters, digits and '-'")
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} (use {', '.join(KINDS)})")
    if not parent.is_dir():
        raise UsageError(f"--dir {parent} is not a folder")
    folder = parent / f"harness-task-{name}"
    if folder.exists():
        raise UsageError(f"{folder} already exists (remove it or choose another --dir)")
    package = "harness_task_" + name.replace("-", "_")
    values = {"name": name, "kind": kind, "package": package, "klass": _class_name(name),
              "module": BASES[kind][0], "base": BASES[kind][1], "backbone": BACKBONES[kind],
              "labels": repr(LABELS[kind]), "inputs": INPUTS[kind],
              "adapt": "frozen" if kind == "audio-classification" else "full",
              "reader": READERS[kind], "imports": IMPORTS[kind]}
    staging = parent / f".harness-task-{name}.tmp"
    if staging.exists():
        raise UsageError(f"{staging} exists (left by an interrupted new-task): remove it first")
    try:
        (staging / package / "data").mkdir(parents=True)
        (staging / "tests").mkdir()
        (staging / "pyproject.toml").write_text(Template(PYPROJECT).substitute(values))
        (staging / "README.md").write_text(Template(README).substitute(values))
        (staging / package / "__init__.py").write_text(f'"""The `{name}` task for harness."""\n')
        (staging / package / "task.py").write_text(Template(TASK_MODULE).substitute(values))
        (staging / "tests" / f"test_{package}.py").write_text(Template(TEST_MODULE).substitute(values))
        EXAMPLE_DATA[kind](staging / package / "data")
        staging.rename(folder)  # all or nothing: a half-written scaffold never has the final name
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc}") from None
    return folder


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-")) + "Task"


# --- the tiny example data sets (deterministic: the same files every time) ----------------------------
def _write_text_examples(folder: Path) -> None:
    rng = random.Random(0)
    good = ("great", "wonderful", "lovely", "excellent", "delightful", "superb")
    bad = ("awful", "terrible", "boring", "dreadful", "poor", "dull")
    things = ("film", "meal", "concert", "book", "trip", "game", "show", "hotel")
    rows = []
    for n in range(120):
        label = ("negative", "positive")[n % 2]
        word = rng.choice(good if label == "positive" else bad)
        rows.append({"text": f"the {rng.choice(things)} was {word} ({n})", "label": label})
    _jsonl(folder / "examples.jsonl", rows)


def _write_token_examples(folder: Path) -> None:
    rng = random.Random(0)
    cities = (("Paris",), ("Berlin",), ("New", "York"), ("Rio", "de", "Janeiro"), ("Tokyo",), ("Cape", "Town"))
    rows = []
    for n in range(120):
        city = rng.choice(cities)
        before, after = rng.choice((("I", "flew", "to"), ("we", "live", "in"), ("she", "left"))), ("today", str(n))
        tokens = [*before, *city, *after]
        tags = ["O"] * len(before) + ["B-CITY"] + ["I-CITY"] * (len(city) - 1) + ["O"] * len(after)
        rows.append({"tokens": tokens, "tags": tags})
    _jsonl(folder / "examples.jsonl", rows)


def _write_image_examples(folder: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    images, labels = [], []
    for n in range(120):
        light = n % 2
        base = 170 if light else 60
        images.append(np.clip(rng.normal(base, 30, size=(32, 32, 3)), 0, 255).astype(np.uint8))
        labels.append(light)
    np.savez_compressed(folder / "examples.npz", images=np.stack(images), labels=np.array(labels, dtype=np.int64))


def _write_audio_examples(folder: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    rate = 16000
    for n in range(48):
        label = ("high", "low")[n % 2]
        pitch = rng.uniform(1500, 2500) if label == "high" else rng.uniform(150, 300)
        t = np.arange(rate // 2) / rate
        clip = 0.4 * np.sin(2 * np.pi * pitch * t) + rng.normal(0, 0.02, t.size)
        (folder / label).mkdir(exist_ok=True)
        with wave.open(str(folder / label / f"{n:03d}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(struct.pack(f"<{t.size}h", *np.round(clip * 32767).astype(np.int16).tolist()))


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


EXAMPLE_DATA = {"text-classification": _write_text_examples, "token-classification": _write_token_examples,
                "image-classification": _write_image_examples, "audio-classification": _write_audio_examples}

IMPORTS = {
    "text-classification": "import json\n",
    "token-classification": "import json\n",
    "image-classification": "import numpy as np\n",
    "audio-classification": "",
}

READERS = {
    "text-classification": '''\
        rows = [json.loads(line) for line in (DATA / "examples.jsonl").read_text().splitlines() if line]
        numbered = [(n, row["text"], row["label"]) for n, row in enumerate(rows)]
        parts = hash_split(numbered, key=lambda r: r[1], salt=SALT, fractions=FRACTIONS)
        return {split: [Example(f"ex-{n:05d}", text, label) for n, text, label in part]
                for split, part in parts.items()}''',
    "token-classification": '''\
        rows = [json.loads(line) for line in (DATA / "examples.jsonl").read_text().splitlines() if line]
        numbered = [(n, row["tokens"], row["tags"]) for n, row in enumerate(rows)]
        parts = hash_split(numbered, key=lambda r: " ".join(r[1]), salt=SALT, fractions=FRACTIONS)
        return {split: [Example(f"ex-{n:05d}", tokens, tags) for n, tokens, tags in part]
                for split, part in parts.items()}''',
    "image-classification": '''\
        with np.load(DATA / "examples.npz", allow_pickle=False) as data:  # never unpickle data files
            images, labels = data["images"], data["labels"]
        numbered = [(n, image, self.label_names[int(label)]) for n, (image, label) in enumerate(zip(images, labels))]
        parts = hash_split(numbered, key=lambda r: r[1].tobytes().hex(), salt=SALT, fractions=FRACTIONS)
        return {split: [Example(f"img-{n:05d}", image, label) for n, image, label in part]
                for split, part in parts.items()}''',
    "audio-classification": '''\
        clips = sorted(DATA.glob("*/*.wav"))  # one folder per label
        numbered = [(str(path.relative_to(DATA)), path) for path in clips]
        parts = hash_split(numbered, key=lambda r: r[0], salt=SALT, fractions=FRACTIONS)
        return {split: [Example(name, str(path), path.parent.name) for name, path in part]
                for split, part in parts.items()}''',
}

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=65"]
build-backend = "setuptools.build_meta"

[project]
name = "harness-task-$name"
version = "0.1.0"
description = "The '$name' task ($kind) for the harness benchmark"
requires-python = ">=3.11"
dependencies = ["harness"]

# The harness finds the task through this entry-point group, exactly as it finds its built-in tasks.
[project.entry-points."harness.tasks"]
$name = "$package.task:$klass"

[tool.setuptools.packages.find]
include = ["$package*"]  # the package and its data folders

[tool.setuptools.package-data]
"*" = ["*.jsonl", "*.npz", "*.wav"]
'''

TASK_MODULE = '''\
"""`$name`: a $kind task for the harness (scaffolded by `harness new-task`).

Replace the example data in data/ with yours and `read_splits` with your reader; keep the rules
`harness validate $name` checks: ids unique and stable, splits disjoint and never empty, every
reference one of `label_names`, and a `version` bumped whenever data, split or scoring changes.
"""

from __future__ import annotations

${imports}from pathlib import Path
from typing import ClassVar

from harness.assets import directory_digest
from harness.protocol import TrainingProtocol, protocol_table
from harness.splits import hash_split
from harness.task import Example, TaskSpec
from $module import $base

DATA = Path(__file__).parent / "data"  # shipped inside the package (see package-data in pyproject.toml)
SALT = "$name-v1"  # change it (and the version) to draw new splits
FRACTIONS = (("train", 0.7), ("dev", 0.15), ("test", 0.15))


class $klass($base):
    # What the task is. The base class fills in modality, kind and metrics (primary first); list
    # `metrics=` here only to choose another primary metric among those the base computes.
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="$name",
        version="1",  # bump whenever data, split or scoring changes: runs never mix across versions
        default_backbone="$backbone",  # any registered backbone of this modality (`harness list backbones`)
        default_adapt="$adapt",  # frozen | full | partial:N
        description="scaffolded example: replace with what your task measures",
        license="the licence of your data",
        citation="where your data comes from",
        data_sources=("package data: $package/data",),
    )
    # The output classes in head order: every reference in the data must be one of them.
    label_names: ClassVar[tuple[str, ...]] = $labels
    # One recipe per protocol: smoke (seconds, for tests), quick (minutes on a CPU), standard (the official
    # recipe). Every field of TrainingProtocol, with its default: epochs (required), batch_size=32,
    # eval_batch_size=64, lr=5e-5 (backbone), head_lr=1e-3, weight_decay=0.01, warmup_ratio=0.1, grad_clip=1.0,
    # layer_mix="last" | "weighted", batching="length-grouped" | "random", precision="auto" | "fp32" | "bf16",
    # compile=False, train_limit/dev_limit/test_limit=None (whole split), inputs={...} (max_length for text,
    # default 128; image_size for images, default the backbone's; clip_seconds for audio, default 1.0).
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=8, lr=1e-4, train_limit=32, dev_limit=16, test_limit=16,
                               inputs=$inputs),
        quick=TrainingProtocol(epochs=3, batch_size=16, lr=1e-4, inputs=$inputs),
        standard=TrainingProtocol(epochs=10, batch_size=32, lr=5e-5, inputs=$inputs),
    )
    # Optional hooks, with their defaults (see harness.task.Task):
    # accepts_data_dir = False: True lets users point `harness run --data-dir DIR` at their copy of the data
    # explain_settings = {}: protocol name -> harness.explain.ExplainSettings (the explanation budget)
    # def build_explainer(self, backbone, protocol, settings, device): your own explainer, or None for the base's

    def data_fingerprint(self) -> str:
        """A digest of the data's content: part of every run's identity, so changed data means new run ids."""
        return directory_digest(DATA)

    def read_splits(self) -> dict[str, list[Example]]:
        """Every split's examples, in a fixed order. Here: split by a content hash, so it is the same on
        every machine and duplicates stay together."""
$reader
'''

TEST_MODULE = '''\
"""The checks `harness validate $name` runs: spec, splits, stability, labels, a smoke run, a repeat, explain."""

from harness.validation import validate


def test_${package}_passes_validate() -> None:
    results = validate("$name")
    failed = [f"{r.name}: {r.detail}" for r in results if r.passed is False]
    assert not failed, failed
    assert all(r.passed for r in results)
'''

README = '''\
# harness-task-$name

The `$name` task ($kind) for the harness benchmark, scaffolded by `harness new-task`.

```sh
pip install -e .                                 # registers the task through the harness.tasks entry point
harness validate $name                           # the checklist every task must pass
harness run --task $name --protocol smoke        # a run in seconds
harness run --task $name                         # the quick protocol on $backbone
pytest                                           # the same checks as harness validate
```

Next steps: put your data in `$package/data/` (or read it from wherever it lives, with
`accepts_data_dir = True` and `harness run --data-dir`), rewrite `read_splits`, list your labels in
`label_names`, fill in the spec's description, licence and citation, and bump `version` whenever the data,
split or scoring changes.
'''
