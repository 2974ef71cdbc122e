"""Audio classification on any registered audio backbone. Example.input: a WAV path (or a float32
16 kHz waveform); Example.target: a label name. Clips are resampled to the backbone's rate and
centre-cut or zero-padded to the protocol's `clip_seconds` (default 1.0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.classification import ClassificationTask
from harness.protocol import TrainingProtocol
from harness.task import Example, Modality


def load_clip(source: Any, sampling_rate: int, clip_seconds: float) -> np.ndarray:
    from harness.audio.wav import fit_length, read_wav, resample

    if isinstance(source, str | Path):
        samples, rate = read_wav(Path(source))
        if rate != sampling_rate:
            samples = resample(samples, rate, sampling_rate)
    else:
        samples = np.asarray(source, dtype=np.float32)
    return fit_length(samples, round(clip_seconds * sampling_rate))


class AudioClassificationTask(ClassificationTask):
    modality: ClassVar[Modality] = "audio"
    kind: ClassVar[str] = "audio-classification"
    explainer: ClassVar[str] = "audio"

    def collate_inputs(self, rows: list[Example], backbone: Any, protocol: TrainingProtocol,
                       train: bool) -> dict[str, Any]:
        seconds = float(protocol.inputs.get("clip_seconds", 1.0))
        clips = [load_clip(r.input, backbone.sampling_rate, seconds) for r in rows]
        return {"input_features": backbone.log_mel(clips)}
