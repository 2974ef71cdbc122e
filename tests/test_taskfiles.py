"""Task files: every data source kind, labels, splits, fingerprints, protocol inheritance, discovery and clashes."""

from __future__ import annotations

import json
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UsageError
from harness.registry import DuplicateEntryError, Registry
from harness.task import TASKS
from harness.taskfiles.build import build_task_class
from harness.taskfiles.discovery import register_path, scan
from harness.taskfiles.schema import TaskFileError, read_task_file

datasets = pytest.importorskip("datasets")

TEXTS = {"positive": ["a fine day", "lovely food", "great fun", "so good", "very nice", "superb show"],
         "negative": ["a bad day", "awful food", "no fun", "so poor", "very dull", "dire show"]}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def task_toml(folder: Path, name: str = "mytask", kind: str = "text-classification", extra: str = "",
              data: str = 'format = "csv"\npath = "data.csv"', splits: str | None = None,
              labels: str = 'labels = "sorted"') -> Path:
    splits = splits if splits is not None else 'fractions = { train = 0.6, dev = 0.2, test = 0.2 }\nsalt = "s1"'
    return write(folder / f"{name}.toml", f'name = "{name}"\nversion = "1"\nkind = "{kind}"\n'
                                          f'description = "test task"\n{labels}\n{extra}\n'
                                          f'[data]\n{data}\n\n[splits]\n{splits}\n')


def load(path: Path):
    return build_task_class(read_task_file(path))()


def csv_rows(n: int = 30) -> str:
    lines = ["text,label"]
    for i in range(n):
        label = ("positive", "negative")[i % 2]
        lines.append(f"{TEXTS[label][i % 6]} number {i},{label}")
    return "\n".join(lines) + "\n"


def splits_of(task) -> dict[str, list]:
    return {s: task.load_split(s) for s in ("train", "dev", "test")}


# --- sources -------------------------------------------------------------------------------------------
def test_csv_with_hash_fractions(tmp_path: Path) -> None:
    write(tmp_path / "data.csv", csv_rows(40))
    task = load(task_toml(tmp_path))
    parts = splits_of(task)
    assert sum(len(p) for p in parts.values()) == 40 and all(parts.values())
    ids = [e.id for p in parts.values() for e in p]
    assert len(set(ids)) == 40
    assert task.labels == ("negative", "positive")
    assert task.spec.modality == "text" and task.spec.primary.name == "accuracy"
    again = load(task_toml(tmp_path))
    assert [e.id for e in again.load_split("test")] == [e.id for e in parts["test"]]


def test_json_lines_with_named_source_splits_and_id_column(tmp_path: Path) -> None:
    for split, n in (("train", 10), ("validation", 4), ("test", 4)):
        rows = [{"uid": f"{split}-{i}", "sentence": f"{split} text {i}", "y": ["neg", "pos"][i % 2]} for i in range(n)]
        write(tmp_path / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    path = task_toml(tmp_path, data='format = "json"\nfiles = { train = "train.jsonl", validation = '
                                    '"validation.jsonl", test = "test.jsonl" }',
                     splits="", labels='labels = ["neg", "pos"]',
                     extra='[columns]\ntext = "sentence"\nlabel = "y"\nid = "uid"\n')
    task = load(path)
    parts = splits_of(task)
    assert [len(parts[s]) for s in ("train", "dev", "test")] == [10, 4, 4]
    assert parts["dev"][0].id == "validation-0" and parts["dev"][0].input == "validation text 0"


def test_parquet_with_dev_carved_from_train(tmp_path: Path) -> None:
    import pandas as pd

    for split, n in (("train", 40), ("test", 8)):
        pd.DataFrame({"text": [f"{split} {i}" for i in range(n)], "label": [i % 3 for i in range(n)]}).to_parquet(
            tmp_path / f"{split}.parquet")
    path = task_toml(tmp_path, data='format = "parquet"\nfiles = { train = "train.parquet", test = "test.parquet" }',
                     splits='dev = { from = "train", fraction = 0.25 }\nsalt = "carve"')
    parts = splits_of(load(path))
    assert len(parts["train"]) + len(parts["dev"]) == 40 and len(parts["test"]) == 8
    assert {e.target for e in parts["train"]} == {"0", "1", "2"}  # plain integers are labels by their text


def test_image_folder_tree(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        for i in range(6):
            (tmp_path / "pics" / label).mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / label / f"{i}.png")
    path = task_toml(tmp_path, kind="image-classification", data='format = "imagefolder"\npath = "pics"',
                     labels='labels = "dataset"')
    task = load(path)
    parts = splits_of(task)
    assert sum(len(p) for p in parts.values()) == 12
    example = parts["train"][0]
    assert example.input.dtype == np.uint8 and example.input.shape == (8, 8, 3)
    assert task.labels == ("cat", "dog") and task.spec.primary.name == "top1"


def write_wav(path: Path, pitch: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((np.sin(2 * np.pi * pitch * t) * 8000).astype("<i2").tobytes())


def test_audio_folder_tree_with_split_folders(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("validation", 2), ("test", 2)):
        for label, pitch in (("high", 2000.0), ("low", 200.0)):
            for i in range(n):
                write_wav(tmp_path / "clips" / split / label / f"{i}.wav", pitch + i)
    path = task_toml(tmp_path, kind="audio-classification", data='format = "audiofolder"\npath = "clips"', splits="")
    task = load(path)
    parts = splits_of(task)
    assert [len(parts[s]) for s in ("train", "dev", "test")] == [12, 4, 4]
    assert Path(parts["test"][0].input).is_file() and parts["test"][0].target in ("high", "low")
    assert task.spec.default_adapt == "frozen" and task.protocols["quick"].layer_mix == "weighted"


def test_text_folder_tree_deduplicates(tmp_path: Path) -> None:
    for label, texts in TEXTS.items():
        for i, text in enumerate(texts):
            write(tmp_path / "docs" / label / f"{i}.txt", text)
    write(tmp_path / "docs" / "positive" / "copy.txt", TEXTS["positive"][0])  # an exact duplicate
    write(tmp_path / "docs" / "negative" / "clash.txt", TEXTS["positive"][1])  # a copy with the other label
    path = task_toml(tmp_path, data='format = "textfolder"\npath = "docs"',
                     splits='fractions = { train = 0.6, dev = 0.2, test = 0.2 }\nsalt = "x"\ndeduplicate = true')
    parts = splits_of(load(path))
    texts = [e.input for p in parts.values() for e in p]
    assert len(texts) == 11 and len(set(texts)) == 11  # 12 + 2 files: one duplicate kept once, one conflict dropped
    assert TEXTS["positive"][1] not in texts
    assert parts["train"][0].id.count("/") == 1  # "label/file.txt": no source-split prefix for a single split


def test_saved_to_disk(tmp_path: Path) -> None:
    dd = datasets.DatasetDict({
        s: datasets.Dataset.from_dict({"tokens": [["Paris", "is", "big", str(i)] for i in range(n)],
                                       "ner": [[1, 0, 0, 0] for _ in range(n)]},
                                      features=datasets.Features({
                                          "tokens": datasets.Sequence(datasets.Value("string")),
                                          "ner": datasets.Sequence(datasets.ClassLabel(names=["O", "B-LOC"]))}))
        for s, n in (("train", 6), ("validation", 2), ("test", 2))})
    dd.save_to_disk(str(tmp_path / "saved"))
    path = task_toml(tmp_path, kind="token-classification", data='format = "disk"\npath = "saved"', splits="",
                     labels='labels = "dataset"', extra='[columns]\ntags = "ner"\n')
    task = load(path)
    example = task.load_split("train")[0]
    assert example.input[0] == "Paris" and example.target == ["B-LOC", "O", "O", "O"]
    assert task.labels == ("O", "B-LOC") and task.spec.primary.name == "entity_f1"


def test_hub_dataset_offline_and_not_cached_is_one_clear_line(tmp_path: Path) -> None:
    path = task_toml(tmp_path, data='format = "hub"\ndataset = "nobody/not-a-cached-dataset"', splits="")
    with pytest.raises(UsageError) as info:
        load(path).load_split("train")
    message = str(info.value)
    assert "nobody/not-a-cached-dataset" in message and "offline" in message and "\n" not in message


# --- what changes a run's identity ---------------------------------------------------------------------
def test_fingerprint_follows_content_and_data_settings(tmp_path: Path) -> None:
    data = write(tmp_path / "data.csv", csv_rows(20))
    first = load(task_toml(tmp_path)).data_fingerprint()
    assert first == load(task_toml(tmp_path)).data_fingerprint()
    data.write_text(csv_rows(20).replace("number 3,", "number three,"))
    changed = load(task_toml(tmp_path)).data_fingerprint()
    assert changed != first
    resalted = task_toml(tmp_path, splits='fractions = { train = 0.6, dev = 0.2, test = 0.2 }\nsalt = "s2"')
    assert load(resalted).data_fingerprint() != changed


def test_protocols_inherit_the_kind_and_override_fields(tmp_path: Path) -> None:
    write(tmp_path / "data.csv", csv_rows(20))
    path = task_toml(tmp_path, extra='metrics = ["macro_f1", "accuracy"]\n'
                                     '[protocols.quick]\nepochs = 5\ninputs = { max_length = 32 }\n')
    task = load(path)
    quick = task.protocols["quick"]
    assert quick.epochs == 5 and quick.inputs["max_length"] == 32 and quick.batch_size == 32
    assert task.protocols["smoke"].train_limit == 64
    assert task.spec.primary.name == "macro_f1"


# --- bad task files: one line naming the file and the field ---------------------------------------------
@pytest.mark.parametrize(("change", "expected"), [
    ({"kind": "text-regression"}, "unknown kind"),
    ({"extra": "[protocols.quick]\nepoch = 3\n"}, "protocols.quick.epoch"),
    ({"extra": "[protocols.quick]\nepochs = \"three\"\n"}, "protocols.quick.epochs"),
    ({"extra": 'metrics = ["bleu"]\n'}, "not 'bleu'"),
    ({"splits": 'fractions = { train = 0.6, dev = 0.3, test = 0.3 }\nsalt = "x"'}, "sum to 1"),
    ({"data": 'format = "xlsx"\npath = "data.csv"'}, "unknown format"),
    ({"labels": "labels = []"}, "lists no label"),
])
def test_bad_task_files_fail_at_load(tmp_path: Path, change: dict, expected: str) -> None:
    write(tmp_path / "data.csv", csv_rows(20))
    with pytest.raises(TaskFileError) as info:
        load(task_toml(tmp_path, **change))
    assert expected in str(info.value) and str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_missing_column_and_unlisted_label_and_empty_split_are_named(tmp_path: Path) -> None:
    write(tmp_path / "data.csv", csv_rows(20))
    with pytest.raises(UsageError, match="column 'review'.*columns: text, label"):
        load(task_toml(tmp_path, extra='[columns]\ntext = "review"\n')).load_split("train")
    with pytest.raises(UsageError, match="label 'positive' is in the data but not in labels"):
        load(task_toml(tmp_path, labels='labels = ["negative", "neutral"]')).load_split("train")
    with pytest.raises(UsageError, match="the data has no split 'validation' for dev \\(it has train\\)"):
        load(task_toml(tmp_path, splits="")).load_split("train")  # a CSV is one split: no 'validation' to use
    write(tmp_path / "one.csv", "text,label\nonly row,positive\n")
    with pytest.raises(UsageError, match="split is empty"):
        load(task_toml(tmp_path, data='format = "csv"\npath = "one.csv"')).load_split("train")


def test_unparseable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="not valid TOML"):
        read_task_file(write(tmp_path / "bad.toml", "name = \n"))


# --- discovery and clashes ----------------------------------------------------------------------------
def test_search_path_discovery_and_clash_with_a_python_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "data.csv", csv_rows(20))
    task_toml(tmp_path / "mine", name="mine", data='format = "csv"\npath = "../data.csv"')
    task_toml(tmp_path / "mine", name="ner", data='format = "csv"\npath = "../data.csv"')
    write(tmp_path / "mine" / "broken.toml", "this is not toml")
    monkeypatch.setenv("HARNESS_TASK_PATH", str(tmp_path / "mine"))
    registry: Registry = Registry("task", "harness.tests-no-such-group")
    registry.add_lazy("ner", "harness_tasks.ner:NerTask", "entry point of harness")
    scan(registry)
    assert "mine" in registry.names() and registry.get("mine").spec.name == "mine"
    problems = registry.problems()
    assert "duplicate task 'ner'" in problems["ner"] and "harness_tasks.ner:NerTask" in problems["ner"]
    assert str(tmp_path / "mine" / "ner.toml") in problems["ner"]
    assert "not valid TOML" in problems["broken"]
    with pytest.raises(DuplicateEntryError):
        registry.get("ner")


def test_task_file_by_path_registers_and_names_a_clash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_TASK_PATH", raising=False)
    write(tmp_path / "data.csv", csv_rows(20))
    registry: Registry = Registry("task", "harness.tests-no-such-group")
    assert register_path(str(task_toml(tmp_path, name="by-path")), registry) == "by-path"
    assert registry.get("by-path").spec.name == "by-path"
    assert str(tmp_path / "by-path.toml") in os.environ["HARNESS_TASK_PATH"]  # worker processes find it too
    registry.add_lazy("taken", "somewhere:Task", "entry point of x")
    with pytest.raises(DuplicateEntryError, match="somewhere:Task"):
        register_path(str(task_toml(tmp_path, name="taken")), registry)


def test_a_task_file_path_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    registry: Registry = Registry("task", "harness.tests-no-such-group")
    with pytest.raises(UsageError, match="task file nowhere/x.toml does not exist"):
        register_path("nowhere/x.toml", registry)


def test_builtin_topics_is_a_task_file() -> None:
    task = TASKS.get("topics")()
    assert TASKS.origin("topics").endswith("topics.toml") and "entry point" in TASKS.source("topics")
    parts = splits_of(task)
    assert [len(parts[s]) for s in ("train", "dev", "test")] == [1687, 210, 230]
    assert task.labels == ("business", "entertainment", "politics", "sports", "tech")
    assert task.protocols["quick"].inputs["max_length"] == 128


def test_the_same_task_file_found_twice_is_one_definition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "data.csv", csv_rows(20))
    first = task_toml(tmp_path / "a", name="twice", data='format = "csv"\npath = "../data.csv"')
    (tmp_path / "b").mkdir()
    shutil.copy(first, tmp_path / "b" / "twice.toml")  # an installed copy and a checkout's: the same bytes
    monkeypatch.setenv("HARNESS_TASK_PATH", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    registry: Registry = Registry("task", "harness.tests-no-such-group")
    scan(registry)
    assert registry.problems() == {} and registry.origin("twice") == str(first)
    (tmp_path / "b" / "twice.toml").write_text(first.read_text().replace("test task", "another task"))
    registry = Registry("task", "harness.tests-no-such-group")
    scan(registry)
    assert "duplicate task 'twice'" in registry.problems()["twice"]
