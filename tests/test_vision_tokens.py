"""Token-shaped (ViT-style) and channels-last image backbones through the vision adapter, and timm model
folders as backbones: the patch tokens become the feature grid that heads pool and Grad-CAM reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from harness.assets import SourceKind
from harness.backbones.spec import BackboneSpec, resolve_backbone
from harness.backbones.timm_models import create_timm_model
from harness.backbones.vision import VisionBackbone
from harness.errors import UsageError


def _tiny_vit() -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=3, num_heads=2, dynamic_img_size=True)


def _spec() -> BackboneSpec:
    return BackboneSpec(name="tiny-vit", modality="image", factory=lambda spec, asset: None)


def _captured_grid(backbone: VisionBackbone, pixels: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    hook = backbone.feature_map.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            backbone(pixel_values=pixels)
    finally:
        hook.remove()
    return seen[0]


def test_patch_tokens_are_laid_on_their_grid_and_pooled_like_timm_avg() -> None:
    model = _tiny_vit().eval()
    backbone = VisionBackbone(_spec(), model, {"mean": (0.5,) * 3, "std": (0.5,) * 3}).eval()
    assert backbone.token_shaped and "patch tokens" in backbone.feature_map_source
    pixels = torch.randn(2, 3, 32, 48)  # not the 32 x 32 it was made for: a 4 x 6 patch grid
    with torch.no_grad():
        tokens = model.forward_features(pixels)  # [2, 1 + 24, 16]: the class token first
        out = backbone(pixel_values=pixels)
    assert tokens.shape == (2, 25, 16)
    assert out.sequence.shape == (2, 24, 16) and out.mask.shape == (2, 24)
    assert torch.equal(out.sequence, tokens[:, 1:])  # the class token is not a grid position
    grid = _captured_grid(backbone, pixels)
    assert grid.shape == (2, 16, 4, 6)
    assert torch.equal(grid[:, :, 1, 2], tokens[:, 1 + 1 * 6 + 2])  # row-major, as the patches were cut
    model.global_pool = "avg"  # timm's own average pooling skips the prefix tokens the same way
    assert torch.allclose(out.pooled, model.forward_head(tokens, pre_logits=True), atol=1e-6)


def test_token_backbone_layer_groups() -> None:
    backbone = VisionBackbone(_spec(), _tiny_vit(), {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    model = backbone.model
    groups = backbone.layer_groups()
    assert groups[0] is model.patch_embed and groups[1] is model.blocks[0] and groups[2] is model.blocks[1]
    assert list(groups[-1]) == [model.blocks[2], model.norm, model.fc_norm]  # the top block with the norms
    assert backbone.num_layers == 3
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids))
    left = {name for name, p in model.named_parameters() if id(p) not in set(ids)}
    assert left == {"cls_token", "pos_embed"}  # model-level tensors, trained only under full adaptation


class _ChannelsLast(nn.Module):
    """A timm-like model whose forward_features is [batch, H, W, C] (as Swin's is)."""

    output_fmt = "NHWC"
    num_features = 3

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1, bias=False)  # the identity: a child with parameters, as real models have
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(3)[:, :, None, None])

    def reset_classifier(self, num_classes: int) -> None:
        pass

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(nn.functional.avg_pool2d(x, 8)).permute(0, 2, 3, 1)


def test_channels_last_maps_are_turned_to_channels_first() -> None:
    backbone = VisionBackbone(_spec(), _ChannelsLast(), {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    assert not backbone.token_shaped and "convolutional" in backbone.feature_map_source
    pixels = torch.randn(1, 3, 16, 32)
    grid = _captured_grid(backbone, pixels)
    assert grid.shape == (1, 3, 2, 4)
    assert torch.allclose(grid, nn.functional.avg_pool2d(pixels, 8), atol=1e-6)


def test_unsupported_feature_shapes_are_reported() -> None:
    class Flat(_ChannelsLast):
        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((2, 3))

    backbone = VisionBackbone(_spec(), Flat(), {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    with pytest.raises(ValueError, match=r"expected a \[batch, C, H, W\] feature map .* got shape \(1, 3\)"):
        backbone(pixel_values=torch.randn(1, 3, 16, 16))


def test_transformers_are_created_for_any_input_size() -> None:
    vit = create_timm_model("vit_tiny_patch16_224", pretrained=False)
    assert vit.dynamic_img_size  # a protocol's 128 px works with position embeddings made for 224 px
    with torch.no_grad():
        assert vit.forward_features(torch.randn(1, 3, 128, 96)).shape == (1, 1 + 8 * 6, 192)
    cnn = create_timm_model("resnet18", pretrained=False)  # no such option: created as it is
    assert type(cnn).__name__ == "ResNet"


def test_a_timm_folder_is_an_image_backbone(tiny_vit_folder: Path) -> None:
    spec = resolve_backbone(str(tiny_vit_folder), "image")
    assert spec.name == "tiny-vit" and spec.local_dir == str(tiny_vit_folder.resolve())
    asset = spec.resolve()
    assert asset.kind is SourceKind.LOCAL_DIR and asset.pretrained
    assert asset.source == "local directory" and asset.revision.startswith("sha256:")
    backbone = spec.build(asset)
    assert backbone.token_shaped and backbone.feature_dim == 32
    stored = load_file(str(tiny_vit_folder / "model.safetensors"))
    assert torch.equal(backbone.model.blocks[1].attn.qkv.weight, stored["blocks.1.attn.qkv.weight"])
    assert backbone.data_config["input_size"] == (3, 32, 32)


def _copy(folder: Path, tmp_path: Path, **config: Any) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    document = json.loads((target / "config.json").read_text())
    for key, value in config.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    (target / "config.json").write_text(json.dumps(document))
    return target


@pytest.mark.parametrize("change,message", [
    ({"architecture": None}, "config.json names no timm 'architecture'"),
    ({"architecture": "vit_enormous_patch3"}, "has no architecture 'vit_enormous_patch3'"),
])
def test_bad_timm_folders_are_one_line_errors(tiny_vit_folder: Path, tmp_path: Path, change: dict,
                                              message: str) -> None:
    folder = _copy(tiny_vit_folder, tmp_path, **change)
    spec = resolve_backbone(str(folder), "image")
    with pytest.raises(UsageError, match=message):
        spec.build(spec.resolve())


def test_a_folder_without_safetensors_is_refused(tiny_vit_folder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_vit_folder, tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")  # pickled checkpoints are not loaded
    spec = resolve_backbone(str(folder), "image")
    with pytest.raises(UsageError, match="no model.safetensors"):
        spec.build(spec.resolve())
