"""Checks that a backbone folder (`--backbone DIR`) holds a model its modality's adapter can build, made
before a run is claimed (see harness.preflight): a folder that is not a model is bad input, said in one line,
not a failed run. Each check reads what the adapter reads first: config.json and the model type it names.
Torch-free at import (timm and transformers are imported inside the checks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.assets import read_model_config
from harness.backbones.spec import BackboneSpec
from harness.backbones.timm_models import timm_folder
from harness.errors import UsageError


def check_folder(spec: BackboneSpec) -> None:
    """UsageError (one line) when `spec` is a folder backbone its modality cannot load; else nothing."""
    if spec.local_dir is None:
        return
    check = _CHECKS.get(spec.modality)
    if check is not None:
        check(Path(spec.local_dir))


def _text(folder: Path) -> None:
    """AutoModel builds what config.json's `model_type` names: it must be one transformers knows."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES  # lazy: heavy

    model_type = read_model_config(folder).get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        raise UsageError(f"backbone folder '{folder}': config.json names no model type transformers knows "
                         f"(model_type {model_type!r})")


def _audio(folder: Path) -> None:
    """Audio folders are transformers Whisper checkpoints."""
    model_type = read_model_config(folder).get("model_type")
    if model_type != "whisper":
        raise UsageError(f"backbone folder '{folder}': not a Whisper model (config.json model_type {model_type!r})")


def _image(folder: Path) -> None:
    timm_folder(folder)  # the very check the image adapter makes when it builds the model


_CHECKS: dict[str, Callable[[Path], None]] = {"text": _text, "audio": _audio, "image": _image}
