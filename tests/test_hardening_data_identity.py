"""Hardening (issue 15): a run's identity follows the data it reads and the examples it uses.

1. User data is fingerprinted by content (harness.fingerprints), with per-file digests remembered by
   (folder, name, size, mtime, ctime, inode, device): a same-sized replacement of a clip is a new run and
   a new frozen-feature cache key; a rerun re-reads nothing; the cache is never trusted on a stat mismatch
   and a damaged cache file is rebuilt.
2. The config hash covers the label list and each split's ids: a changed split salt or label order is a
   new run id; unchanged data and code give the same id again. Control tasks have neither entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from datagen import write_cifar_archive, write_fashion_mnist, write_speech_commands, write_tone
from harness import fingerprints
from harness.assets import directory_digest, file_digest
from harness.errors import UsageError
from harness.planning import plan_for_record, plan_runs
from harness.protocol import TrainingProtocol, protocol_table
from harness.splits import hash_split
from harness.task import TASKS, Example, TaskSpec
from harness.text_tasks import SequenceClassificationTask

HEX = "sha256:" + "0" * 64


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own, where files written a moment ago are remembered (no 2 s freshness wait)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(root))
    monkeypatch.setattr(fingerprints, "FRESH_NS", 0)
    return root


def _same_size_eight_bit(path: Path) -> None:
    """Replace a 1 s 16-bit clip in place by a 2 s 8-bit clip (the same number of bytes), mtime restored."""
    before = path.stat()
    time.sleep(0.05)  # past one ctime tick: a rewrite in the same tick is what FRESH_NS guards in real use
    write_tone(path, 440, seconds=2.0, width=1)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


# --- 1. content fingerprints ---------------------------------------------------------------------------------


def test_a_same_sized_clip_replacement_is_a_new_run_and_a_new_feature_key(tmp_path: Path, cache_dir: Path) -> None:
    from harness.training.train import feature_cache_for

    root = write_speech_commands(tmp_path / "sc")
    (first,) = plan_runs("speech-commands", protocol="smoke", data_dir=str(root))
    (again,) = plan_runs("speech-commands", protocol="smoke", data_dir=str(root))  # through the remembered digests
    assert again.run_id == first.run_id and again.config == first.config
    _same_size_eight_bit(root / "go" / "spk01_nohash_0.wav")
    (changed,) = plan_runs("speech-commands", protocol="smoke", data_dir=str(root))
    assert changed.config["data"] != first.config["data"] and changed.run_id != first.run_id
    assert changed.config["splits"] == first.config["splits"]  # same names: only the content moved the id
    old_key, new_key = feature_cache_for(first), feature_cache_for(changed)
    assert old_key is not None and new_key is not None
    assert old_key.path("train", 64) != new_key.path("train", 64)


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10"])
def test_image_data_dirs_are_fingerprinted_by_content(name: str, tmp_path: Path, cache_dir: Path) -> None:
    folder = tmp_path / name
    folder.mkdir()
    if name == "cifar10":
        write_cifar_archive(folder / "cifar-10-python.tar.gz")
    else:
        write_fashion_mnist(folder)
    task = TASKS.get(name)(data_dir=str(folder))
    before = task.data_fingerprint()
    assert before == TASKS.get(name)(data_dir=str(folder)).data_fingerprint()
    target = max(folder.iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[-9] ^= 0xFF  # one byte, same size, same mtime
    stat = target.stat()
    time.sleep(0.05)
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert TASKS.get(name)(data_dir=str(folder)).data_fingerprint() != before


def test_digest_helpers_share_one_content_format(tmp_path: Path, cache_dir: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.bin").write_bytes(b"\x01" * 100)
    single = file_digest(model / "config.json")
    assert single == "sha256:" + hashlib.sha256(b"{}").hexdigest()  # what sha256sum prints
    several = file_digest(model / "config.json", model / "sub" / "weights.bin")
    tree = directory_digest(model)
    for digest in (single, several, tree):
        assert digest.startswith("sha256:") and len(digest) == len(HEX) and digest != HEX
    assert several != file_digest(model / "sub" / "weights.bin", model / "config.json")  # order counts
    (model / ".cache").mkdir()
    (model / ".cache" / "download.lock").write_text("x")
    (model / ".DS_Store").write_text("x")
    assert directory_digest(model) == tree  # hidden files are not weights
    (model / "sub" / "weights.bin").write_bytes(b"\x02" * 100)
    assert directory_digest(model) != tree
    (model / "sub" / "weights.bin").write_bytes(b"\x01" * 100)
    assert directory_digest(model) == tree
    (model / "sub" / "weights.bin").rename(model / "sub" / "other.bin")
    assert directory_digest(model) != tree  # names are part of a tree's identity


def test_a_rerun_reads_no_file_again(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_speech_commands(tmp_path / "sc")
    task = TASKS.get("speech-commands")(data_dir=str(root))
    expected = task.data_fingerprint()
    reads: list[Path] = []
    real = fingerprints._read_digest
    monkeypatch.setattr(fingerprints, "_read_digest", lambda p: reads.append(p) or real(p))
    assert TASKS.get("speech-commands")(data_dir=str(root)).data_fingerprint() == expected
    assert reads == []
    time.sleep(0.05)
    write_tone(root / "yes" / "spk00_nohash_0.wav", 999)
    assert TASKS.get("speech-commands")(data_dir=str(root)).data_fingerprint() != expected
    assert [p.name for p in reads] == ["spk00_nohash_0.wav"]  # only the changed clip is read


def _cache_file(cache_dir: Path, folder: Path) -> Path:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]
    return cache_dir / "fingerprints" / f"{key}.json"


@pytest.mark.parametrize("field", [None, 0, 1, 2, 3, 4])  # None: the exact stamp; else size, mtime, ctime, ino, dev
def test_a_remembered_digest_is_used_only_for_the_exact_stat(field: int | None, tmp_path: Path,
                                                               cache_dir: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"payload")
    real = file_digest(path)
    cache = _cache_file(cache_dir, tmp_path)
    body = json.loads(cache.read_text())
    entry = body["files"]["data.bin"]
    assert "sha256:" + entry[5] == real
    if field is not None:
        entry[field] += 1
    entry[5] = "f" * 64  # a poisoned digest: returned only when the whole stamp matches
    cache.write_text(json.dumps(body))
    assert file_digest(path) == ("sha256:" + "f" * 64 if field is None else real)


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[]", b'{"version": 1, "folder": "/elsewhere", "files": {}}',
                                     b'{"version": 1, "folder": "%s", "files": {"data.bin": [1, 2]}}'])
def test_a_damaged_cache_file_is_ignored_and_rebuilt(garbage: bytes, tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"payload")
    cache = _cache_file(cache_dir, tmp_path)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(garbage.replace(b"%s", str(tmp_path.resolve()).encode()))
    assert file_digest(path) == "sha256:" + hashlib.sha256(b"payload").hexdigest()
    assert json.loads(cache.read_text())["files"]["data.bin"][5] == hashlib.sha256(b"payload").hexdigest()


def test_concurrent_writers_leave_a_valid_cache(tmp_path: Path, cache_dir: Path) -> None:
    files = []
    for i in range(24):
        files.append(tmp_path / f"f{i:02d}.bin")
        files[-1].write_bytes(bytes([i]) * 1000)
    errors: list[BaseException] = []

    def work(part: list[Path]) -> None:
        try:
            for _ in range(5):
                for path in part:
                    assert file_digest(path) == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(files[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    body = json.loads(_cache_file(cache_dir, tmp_path).read_text())
    assert set(body["files"]) <= {p.name for p in files}
    assert list((cache_dir / "fingerprints").glob(".*.tmp")) == []  # atomic replace leaves no temporary files


def test_an_unreadable_data_file_is_one_usage_error(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(UsageError, match="cannot read .*missing.bin"):
        file_digest(tmp_path / "missing.bin")


def test_a_read_only_cache_still_fingerprints(tmp_path: Path, cache_dir: Path) -> None:
    cache_dir.mkdir()
    (cache_dir / "fingerprints").write_text("not a folder")  # the cache cannot be written
    path = tmp_path / "data.bin"
    path.write_bytes(b"payload")
    assert file_digest(path) == "sha256:" + hashlib.sha256(b"payload").hexdigest()


# --- 2. split membership and labels in the config hash ---------------------------------------------------------

TEXTS = [f"sentence number {i} about {'food' if i % 2 else 'sport'}" for i in range(40)]


def _topics(salt: str, labels: tuple[str, ...] = ("food", "sport")) -> type:
    """A fresh plugin class, as a plugin author's edited module would give in a new process."""

    class Topics(SequenceClassificationTask):
        spec: ClassVar[TaskSpec] = TaskSpec(name="identity-topics", default_backbone="minilm", version="1",
                                            description="toy", license="CC0", data_sources=("inline",))
        label_names: ClassVar[tuple[str, ...]] = labels
        protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(**dict.fromkeys(
            ("smoke", "quick", "standard"), TrainingProtocol(epochs=1, batch_size=4, inputs={"max_length": 16})))
        reads: ClassVar[int] = 0

        def data_fingerprint(self) -> str:
            return "inline-v1"

        def read_splits(self) -> dict[str, list[Example]]:
            type(self).reads += 1
            rows = [(f"t{i:02d}", text, "food" if i % 2 else "sport") for i, text in enumerate(TEXTS)]
            parts = hash_split(rows, key=lambda r: r[1], salt=salt,
                               fractions=(("train", 0.5), ("dev", 0.25), ("test", 0.25)))
            return {name: [Example(*r) for r in items] for name, items in parts.items()}

    return Topics


@pytest.fixture
def use_task(monkeypatch: pytest.MonkeyPatch) -> Any:
    original = TASKS.get

    def use(cls: type) -> None:
        monkeypatch.setattr(TASKS, "get", lambda name: cls if name == cls.spec.name else original(name))

    return use


def _plan(**kwargs: Any) -> Any:
    return plan_runs("identity-topics", protocol="smoke", **kwargs)[0]


def test_a_changed_split_salt_or_label_order_is_a_new_run(use_task: Any) -> None:
    use_task(_topics("salt-a"))
    first = _plan()
    use_task(_topics("salt-a"))  # the same code again: the same run
    assert _plan().run_id == first.run_id and _plan().config_hash == first.config_hash
    use_task(_topics("salt-b"))
    moved = _plan()
    assert moved.config["data"] == first.config["data"] and moved.config["labels"] == first.config["labels"]
    assert moved.config["splits"] != first.config["splits"] and moved.run_id != first.run_id
    use_task(_topics("salt-a", labels=("sport", "food")))
    relabelled = _plan()
    assert relabelled.config["splits"] == first.config["splits"]
    assert relabelled.config["labels"] != first.config["labels"] and relabelled.run_id != first.run_id


def test_split_digests_follow_the_protocol_limits(use_task: Any) -> None:
    cls = _topics("salt-a")
    use_task(cls)
    task = cls()
    full = _plan().config["splits"]
    assert {k: v["examples"] for k, v in full.items()} == {k: len(task.load_split(k)) for k in full}
    smaller = cls.protocols["smoke"].with_changes(name="smoke-2", train_limit=2)
    limited = plan_runs("identity-topics", protocol=smaller)[0].config["splits"]
    assert limited["train"]["examples"] == 2 and limited["train"] != full["train"]
    assert limited["test"] == full["test"]


def test_splits_are_read_once_per_process_for_many_plans(use_task: Any) -> None:
    cls = _topics("salt-memo")
    use_task(cls)
    for seed in range(3):
        _plan(seeds=[seed])
    assert cls.reads == 1  # a leaderboard plans a task once per cell


def test_control_tasks_have_no_split_or_label_entries() -> None:
    (plan,) = plan_runs("cartpole", protocol="smoke")
    assert "splits" not in plan.config and "labels" not in plan.config


def _record(plan: Any) -> dict[str, Any]:
    return {"run_id": plan.run_id, "task": plan.task.spec.name, "backbone": plan.backbone.name,
            "protocol": plan.protocol.name, "seed": plan.seed, "adapt": str(plan.adaptation),
            "config": plan.config, "config_hash": plan.config_hash}


def test_a_stored_run_is_rebuilt_and_an_older_one_is_refused(use_task: Any) -> None:
    use_task(_topics("salt-a"))
    plan = _plan()
    assert plan_for_record(_record(plan)).config_hash == plan.config_hash
    use_task(_topics("salt-b"))
    with pytest.raises(UsageError, match="differs in splits"):
        plan_for_record(_record(plan))
    use_task(_topics("salt-a"))
    older = _record(plan) | {"config": {k: v for k, v in plan.config.items() if k not in ("splits", "labels")},
                             "config_hash": "0" * 64}
    with pytest.raises(UsageError, match="differs in labels, splits"):
        plan_for_record(older)
