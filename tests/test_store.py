from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from harness.errors import RunFailed, RunInProgress, UsageError
from harness.store import RESULT, RunStore, config_hash, make_run_id, write_atomic


def _record(run_id: str, digest: str = "h", status: str = "complete", **extra: object) -> dict:
    """A valid run record (harness.store.record_problem): every field of the schema."""
    return {"schema_version": 1, "run_id": run_id, "config_hash": digest, "status": status, "task": "ner",
            "task_version": "1", "backbone": "minilm", "adapt": "full", "protocol": "smoke", "seed": 0, "config": {},
            "primary_metric": "entity_f1", "metrics": {"entity_f1": 0.5}, "primary": 0.5, "n_examples": 1,
            "timing": {}, "env": {}, "created_at": "2026-01-01T00:00:00", **extra}


def test_config_hash_is_canonical() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_run_id_is_filesystem_safe() -> None:
    run_id = make_run_id("ner", "org/model name", "partial:2", "quick", 3, "abcdef0123456789")
    assert run_id == "ner-org_model_name-partial2-quick-s3-abcdef0123"


def test_write_atomic_leaves_old_content_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, "old")

    class Boom(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, Boom("new"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def test_claim_wipes_unfinished_run_and_locks(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    stale = store.run_dir("r1")
    stale.mkdir(parents=True)
    (stale / "predictions.jsonl").write_text("half-written")
    with store.claim("r1") as directory:
        assert list(directory.iterdir()) == []
        with pytest.raises(RunFailed, match="already in progress"), store.claim("r1"):
            pass


def test_find_complete_requires_complete_status_and_same_hash(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.claim("r1"):
        store.write_result(_record("r1", digest="h1"))
    assert store.find_complete("r1", "h1") is not None
    assert store.find_complete("r1", "other") is None
    with store.claim("r2"):
        store.write_result(_record("r2", status="failed"))
    assert store.find_complete("r2", "h") is None


def test_index_rebuilds_from_directories(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for i in range(3):
        with store.claim(f"run{i}"):
            store.write_result(_record(f"run{i}", seed=i))
    assert len(store.query(task="ner")) == 3
    (tmp_path / "index.sqlite").write_bytes(b"this is not sqlite")
    assert len(store.query(task="ner")) == 3  # broken index: rebuilt from run directories
    (tmp_path / "index.sqlite").unlink()
    assert [r["seed"] for r in store.query()] == [0, 1, 2]
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        assert db.execute("select count(*) from runs").fetchone()[0] == 3


def test_unfinished_directories_are_not_runs(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    (tmp_path / "killed-run").mkdir()
    assert store.run_ids() == []
    assert store.rebuild_index() == 0


def test_resolve_id_prefix_and_errors(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for run_id in ("ner-a-1", "ner-a-2", "sentiment-b"):
        with store.claim(run_id):
            store.write_result(_record(run_id))
    assert store.resolve_id("sent") == "sentiment-b"
    with pytest.raises(UsageError, match="ambiguous"):
        store.resolve_id("ner-a")
    with pytest.raises(UsageError, match=r"did you mean 'ner-a-\d'"):
        store.resolve_id("ner-a-3")


def test_corrupt_result_is_a_clear_error(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / RESULT).write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        store.load("bad")
    assert json.loads(json.dumps(list(store.records()))) == []


def test_a_held_run_is_in_progress_and_hold_spans_a_later_claim(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.claim("r1"), pytest.raises(RunInProgress, match="already in progress"), store.claim("r1"):
        pass
    assert issubclass(RunInProgress, RunFailed)
    with store.hold("r2"):
        with store.claim("r2"):  # the holder's own claim goes through, without a gap
            store.write_result(_record("r2"))
        assert store.find_complete("r2", "h") is not None
    with store.claim("r2"):  # released afterwards
        pass


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def test_export_and_import_a_run_between_stores(tmp_path: Path) -> None:
    scratch, store = RunStore(tmp_path / "scratch"), RunStore(tmp_path / "runs")
    with store.claim("r1"):  # an older, failed attempt of the run is swapped out by the import
        store.write_result(_record("r1", status="failed"))
    with scratch.claim("r1") as directory:
        (directory / "explanations").mkdir()
        (directory / "explanations" / "explanation.json").write_text("{}")
        (directory / ".predictions.jsonl.x.tmp").write_text("a temporary file")
        scratch.write_predictions("r1", [{"id": 0, "pred": 1, "ref": 1}])
        scratch.write_result(_record("r1", primary=0.75))
    record = store.import_run(scratch.export_run("r1"), "r1")
    assert record["primary"] == 0.75 and store.find_complete("r1", "h") == record
    assert sorted(p.relative_to(store.run_dir("r1")).as_posix() for p in store.run_dir("r1").rglob("*")) == [
        "explanations", "explanations/explanation.json", "predictions.jsonl", "result.json"]
    assert [r["primary_value"] for r in store.query(run_id="r1")] == [0.75]
    assert list((tmp_path / "runs" / ".staging").iterdir()) == []
    assert RunStore(tmp_path / "copy").import_run(scratch.run_dir("r1"))["run_id"] == "r1"  # a folder too


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


@pytest.mark.parametrize(("members", "reason"), [
    ([_file("/etc/result.json", b"{}")], "absolute paths"),
    ([_file("../result.json", b"{}")], "'..'"),
    ([_link("result.json", "/etc/passwd")], "links and special files"),
    ([_file("predictions.jsonl", b"")], "has no result.json"),
    ([_file("result.json", json.dumps(_record("r9", status="running")).encode())], "not finished"),
    ([_file("result.json", json.dumps(_record("../r9")).encode())], "no valid run id"),
])
def test_import_refuses_unsafe_or_unfinished_archives(tmp_path: Path, members: list, reason: str) -> None:
    store = RunStore(tmp_path)
    with pytest.raises(UsageError, match=reason):
        store.import_run(_tar(members))
    assert store.run_ids() == [] and list((tmp_path / ".staging").iterdir()) == []
    assert not (tmp_path.parent / "result.json").exists()
