"""Audio: occlusion of time x mel-frequency blocks of the log-mel input (captum FeatureAblation).

Gradients through speech encoders are noisy and unreliable as explanations, so each block of
`mel_block` mel bins x `time_block` frames is replaced by the clip's quietest log-mel level (silence) and
the drop in the predicted class's probability is the block's attribution. The blocks are the
faithfulness units too. Mel bins map back to Hz through Whisper's Slaney mel scale (0-8 kHz).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.audio_tasks import load_clip
from harness.explain.base import Attribution, Explainer, ExplainSettings, Item, batched_scores, normalised
from harness.explain.visuals import spectrogram_figure

FRAME_MS = 10  # Whisper's hop: 160 samples at 16 kHz
MAX_HZ = 8000.0


def mel_centres(n_mels: int) -> np.ndarray:
    """Centre frequency (Hz) of each mel bin of Whisper's (Slaney) filter bank."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    points = np.linspace(hertz_to_mel(0.0, mel_scale="slaney"), hertz_to_mel(MAX_HZ, mel_scale="slaney"), n_mels + 2)
    return mel_to_hertz(points, mel_scale="slaney")[1:-1]


def block_masks(n_mels: int, frames: int, mel_block: int, time_block: int) -> torch.Tensor:
    """[bands*windows, n_mels, frames] one-hot masks of the blocks, band-major."""
    bands = torch.arange(n_mels) // mel_block
    windows = torch.arange(frames) // time_block
    n_windows = int(windows.max()) + 1
    index = bands[:, None] * n_windows + windows[None, :]
    return torch.nn.functional.one_hot(index, int(index.max()) + 1).permute(2, 0, 1).float()


class AudioExplainer(Explainer):
    def __init__(self, task: Any, backbone: Any, protocol: Any, settings: ExplainSettings, device: str = "cpu"):
        super().__init__(settings, device)
        self.task = task
        self.backbone = backbone
        self.clip_seconds = float(protocol.inputs.get("clip_seconds", 1.0))
        ms = settings.time_block * FRAME_MS
        self.method = (f"occlusion of {settings.mel_block} mel bins x {ms} ms blocks of the log-mel input "
                       "(captum FeatureAblation over the block mask), baseline = the clip's quietest level")
        self.unit = f"time x frequency block ({settings.time_block * FRAME_MS} ms x {settings.mel_block} mel bins)"
        self.centres = mel_centres(backbone.n_mels)

    def items(self, model: Any, examples: list[Any]) -> list[Item]:
        labels = list(self.task.label_names)
        items = []
        for example in examples:
            clip = load_clip(example.input, self.backbone.sampling_rate, self.clip_seconds)
            features = self.backbone.log_mel([clip]).to(self.device)  # [1, n_mels, frames]
            with torch.no_grad():
                target = int(model.logits({"input_features": features}).argmax(-1)[0])
            blocks = block_masks(features.shape[1], features.shape[2], self.settings.mel_block,
                                 self.settings.time_block).to(self.device)
            names = [self._block_name(b) for b in range(blocks.shape[0])]
            items.append(Item(example.id, target, labels[target], {"input_features": features}, names,
                              {"group": labels[target], "reference": example.target, "blocks": blocks,
                               "baseline": float(features.min())}))
        return items

    def _grid(self, features: torch.Tensor) -> tuple[int, int]:
        bands = -(-features.shape[1] // self.settings.mel_block)
        windows = -(-features.shape[2] // self.settings.time_block)
        return bands, windows

    def _band_hz(self, band: int) -> tuple[float, float]:
        low = band * self.settings.mel_block
        high = min(len(self.centres), low + self.settings.mel_block) - 1
        return float(self.centres[low]), float(self.centres[high])

    def _block_name(self, block: int) -> str:
        windows = -(-round(self.clip_seconds * 1000 / FRAME_MS) // self.settings.time_block)
        band, window = divmod(block, windows)
        low, high = self._band_hz(band)
        ms = self.settings.time_block * FRAME_MS
        return f"{window * ms}-{(window + 1) * ms} ms, {low:.0f}-{high:.0f} Hz"

    def _probs(self, model: Any, features: torch.Tensor) -> torch.Tensor:
        return model.logits({"input_features": features}).float().softmax(-1)

    def attribute(self, model: Any, item: Item) -> Attribution:
        from captum.attr import FeatureAblation

        features = item.inputs["input_features"]
        blocks = item.display["blocks"]
        # Occlusion by exactly the blocks the faithfulness curves remove (a feature mask of block ids), so
        # edge blocks are the same cells in both (sliding windows would overlap at a ragged edge).
        values = FeatureAblation(lambda x: self._probs(model, x)).attribute(
            features, baselines=item.display["baseline"], target=item.target,
            feature_mask=blocks.argmax(0)[None], perturbations_per_eval=32)[0].detach().float()
        per_block = (blocks * values).sum((1, 2)) / blocks.sum((1, 2))
        return Attribution(per_block.cpu().numpy(), per_block.view(*self._grid(features)).cpu().numpy())

    def scores(self, model: Any, item: Item, keep: np.ndarray) -> np.ndarray:
        features = item.inputs["input_features"]
        blocks = item.display["blocks"]
        kept = (torch.as_tensor(keep, dtype=torch.float32, device=features.device) @ blocks.flatten(1))
        kept = kept.view(len(keep), *features.shape[1:])
        variants = features * kept + item.display["baseline"] * (1 - kept)
        return batched_scores(lambda v: self._probs(model, v)[:, item.target], variants, batch_size=32)

    def item_record(self, item: Item, attribution: Attribution) -> dict[str, Any]:
        return super().item_record(item, attribution) | {"block_map": np.round(attribution.map, 6).tolist()}

    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]:
        """Per predicted keyword: the average block map (each normalised) and the time window and frequency
        band that carry the most evidence."""
        maps: dict[str, list[np.ndarray]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            maps[item.label].append(normalised(attribution.map))
        ms = self.settings.time_block * FRAME_MS
        groups = {}
        for label, stack in sorted(maps.items()):
            mean = np.mean(stack, axis=0)  # [bands, windows]
            by_time, by_band = mean.sum(0), mean.sum(1)
            window, band = int(by_time.argmax()), int(by_band.argmax())
            low, high = self._band_hz(band)
            groups[label] = {
                "items": len(stack), "mean_block_map": np.round(mean, 5).tolist(),
                "time_profile": np.round(by_time, 5).tolist(), "band_profile": np.round(by_band, 5).tolist(),
                "top_time_ms": [window * ms, (window + 1) * ms], "top_band_hz": [round(low), round(high)],
            }
        n_bands = next(iter(maps.values()))[0].shape[0] if maps else 0
        bands = [[round(a), round(b)] for a, b in map(self._band_hz, range(n_bands))]
        return {"kind": "time_frequency", "by": "predicted class", "window_ms": ms, "bands_hz": bands,
                "groups": groups}

    def visuals(self, items: list[Item], attributions: list[Attribution], out: Path) -> list[dict[str, Any]]:
        shown = []
        for i, (item, attribution) in enumerate(list(zip(items, attributions, strict=True))[:self.settings.visuals]):
            name = f"occlusion-{i}.png"
            spectrogram_figure(item.inputs["input_features"][0].cpu().numpy(), attribution.map, self.centres,
                               FRAME_MS, f"{item.label} (true {item.display['reference']})", out / name)
            shown.append({"kind": "image", "file": name, "id": item.id, "label": item.label,
                          "caption": "log-mel spectrogram and the occlusion map (drop in the class probability)"})
        return shown
