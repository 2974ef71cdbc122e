"""timm model lookup and creation: which architectures exist, model folders, dynamic input sizes.

`harness.backbones.spec` imports this module to check timm names, and spec must stay torch- and timm-free at
import time (`harness list` never imports torch). So every `import timm` here is inside the function that
needs it; keep it that way, and never import `harness.backbones.spec` from here.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UsageError, first_line

if TYPE_CHECKING:  # annotations only: importing torch here would load it for `harness list`
    from torch import nn


def timm_version() -> str:
    """The installed timm's version: part of the revision of weights that timm fetches itself."""
    import timm  # lazy: see the module docstring

    return str(timm.__version__)


def timm_model_exists(name: str) -> bool:
    """A timm architecture, optionally tagged (resnet18.a1_in1k). hf-hub: ids cannot be checked offline: True."""
    if name.startswith(("hf-hub:", "hf_hub:")):
        return True
    import timm  # lazy: see the module docstring

    return bool(timm.is_model(name))


def require_timm_model(name: str) -> None:
    """Raise a one-line UsageError, with the closest names, if timm has no model `name`."""
    if timm_model_exists(name):
        return
    import timm  # lazy: see the module docstring

    close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise UsageError(f"unknown timm model '{name}'{hint}")


def timm_folder(path: Path) -> Path:
    """`path` if it holds a timm model (config.json naming an architecture timm knows); else a UsageError.

    Only the config.json + model.safetensors layout of timm's Hugging Face repos and `save_for_hf` is taken:
    no pickled checkpoint is ever loaded.
    """
    import timm  # lazy: see the module docstring

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"backbone folder '{path}': no readable config.json ({first_line(exc)})") from None
    architecture = config.get("architecture") if isinstance(config, dict) else None
    if not isinstance(architecture, str):
        raise UsageError(f"backbone folder '{path}': config.json names no timm 'architecture' "
                         "(image backbones from a folder are timm models, e.g. saved with timm's save_for_hf)")
    if not timm.is_model(architecture):
        raise UsageError(f"backbone folder '{path}': timm {timm.__version__} has no architecture '{architecture}'")
    if not (path / "model.safetensors").is_file():
        raise UsageError(f"backbone folder '{path}': no model.safetensors beside config.json")
    return path


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm loads from a hub repo, in its order


def pretrained_source(name: str) -> tuple[str | None, str | None]:
    """Where timm fetches `name`'s pretrained weights: (hub repo, None), (None, url), or (None, None) when it
    knows of none (then create_model itself says so)."""
    if name.startswith(("hf-hub:", "hf_hub:")):
        return name.split(":", 1)[1].split("@")[0], None
    from timm.models import get_pretrained_cfg  # lazy: see the module docstring

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None, None
    return (cfg.hf_hub_id, None) if cfg.hf_hub_id else (None, cfg.url or None)


def weights_cached(repo: str | None, url: str | None) -> bool:
    """True when timm would find the weights on disk (HF cache, or torch hub's checkpoints): no network."""
    if repo is not None:
        from huggingface_hub import try_to_load_from_cache  # lazy: slow to import

        return any(isinstance(try_to_load_from_cache(repo, file), str) for file in WEIGHT_FILES)
    if url is not None:
        import torch.hub  # lazy: see the module docstring

        return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).is_file()
    return False


def create_timm_model(name: str, pretrained: bool) -> nn.Module:
    """timm.create_model; transformer models are asked for dynamic input sizes, so a protocol's image size
    (e.g. 128 px) works with weights trained at 224 px (timm resamples the position embeddings)."""
    import timm  # lazy: see the module docstring

    try:
        return timm.create_model(name, pretrained=pretrained, dynamic_img_size=True)
    except TypeError as exc:  # a model without that option (CNNs): create it as it is
        if "dynamic_img_size" not in str(exc):
            raise
    return timm.create_model(name, pretrained=pretrained)
