"""Each modality's attribution method on tiny models whose right answer is known in closed form."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.adaptation import Adaptation
from harness.audio_tasks import AudioClassificationTask
from harness.backbones.featurizer import LastLayer
from harness.backbones.heads import SequenceClassificationHead
from harness.backbones.spec import Features
from harness.explain.base import ExplainSettings
from harness.image_tasks import ImageClassificationTask
from harness.protocol import TrainingProtocol
from harness.task import Example
from harness.training.model import TaskModel

SETTINGS = ExplainSettings(examples=2, ig_steps=16, random_rankings=1, visuals=1)


def _model(backbone: nn.Module, dim: int, weights: list[list[float]]) -> TaskModel:
    head = SequenceClassificationHead(dim, len(weights))
    with torch.no_grad():
        head.classifier.weight.copy_(torch.tensor(weights))
        head.classifier.bias.zero_()
    return TaskModel(backbone, LastLayer(), head, Adaptation.parse("frozen")).eval()


# --- control: integrated gradients of a linear function are exactly weight x input ----------------
class _Task:
    observation_names: ClassVar[tuple[str, ...]] = ("a", "b", "c")
    action_names: ClassVar[tuple[str, ...]] = ("left", "right")


def test_integrated_gradients_of_a_linear_policy_are_exact() -> None:
    from harness.explain.policy import VectorControlExplainer

    policy = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        policy.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]))
    explainer = VectorControlExplainer(_Task(), SETTINGS)
    state = np.array([2.0, 1.0, -4.0], dtype=np.float32)
    (item,) = explainer.items(policy, [state])
    assert item.target == 1 and item.label == "right" and item.units == ["a", "b", "c"]  # 3*2 + 0 + 4 = 10 > -2
    attribution = explainer.attribute(policy, item)
    np.testing.assert_allclose(attribution.units, [6.0, 0.0, 4.0], atol=1e-5)
    assert attribution.completeness_gap < 1e-5  # IG is exact on a linear function: the gap is recorded as ~0
    # removing a dimension sets it to the baseline 0: the score loses exactly its attribution
    keep = np.array([[True, True, True], [False, True, True], [True, True, False]])
    np.testing.assert_allclose(explainer.scores(policy, item, keep), [10.0, 4.0, 6.0], atol=1e-5)


def test_pixel_occlusion_removes_exactly_the_cells_the_curves_remove() -> None:
    """20 px frames in an 8 x 8 grid do not tile evenly: each cell's attribution must still be the drop in
    the action's probability when exactly that cell is removed (what the deletion curves do)."""
    from harness.explain.policy import PixelControlExplainer

    torch.manual_seed(0)
    policy = nn.Sequential(nn.Flatten(), nn.Linear(2 * 20 * 20 * 3, 2), nn.Softmax(-1))
    explainer = PixelControlExplainer(_Task(), SETTINGS)
    state = np.random.default_rng(0).random((2, 20, 20, 3)).astype(np.float32)
    (item,) = explainer.items(policy, [state])
    assert len(item.units) == 2 * 8 * 8
    attribution = explainer.attribute(policy, item)
    keep = np.ones((1 + 128, 128), dtype=bool)
    keep[np.arange(1, 129), np.arange(128)] = False  # the full input, then each cell removed alone
    scores = explainer.scores(policy, item, keep)
    np.testing.assert_allclose(attribution.units, scores[0] - scores[1:], atol=1e-6)


# --- images: Grad-CAM of average-pooled channels under a linear head --------------------------------
class _PoolBackbone(nn.Module):
    """Feature map = the input average-pooled over 8 x 8 cells: [batch, 3, H/8, W/8]."""

    data_config: ClassVar[dict[str, Any]] = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "input_size": (3, 32, 32),
                                             "interpolation": "bilinear", "crop_pct": 1.0}
    feature_dim, num_layers, num_hidden_states = 3, 0, 1

    def __init__(self) -> None:
        super().__init__()
        self.feature_map = nn.Identity()

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> Features:
        fmap = self.feature_map(F.avg_pool2d(pixel_values, 8))
        sequence = fmap.flatten(2).transpose(1, 2)
        mask = torch.ones(sequence.shape[:2], dtype=torch.long)
        return Features(sequence=sequence, hidden_states=(sequence,), mask=mask, pooled=sequence.mean(1))

    def layer_groups(self) -> list[nn.Module]:
        return []


class _ImageTask(ImageClassificationTask):
    label_names: ClassVar[tuple[str, ...]] = ("plain", "red corner")


def test_grad_cam_of_a_linear_head_is_the_weighted_channel_map() -> None:
    from harness.explain.image import ImageExplainer

    backbone = _PoolBackbone()
    model = _model(backbone, 3, [[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # class 1 = 5 x mean red
    protocol = TrainingProtocol("t", epochs=1)
    explainer = ImageExplainer(_ImageTask(), backbone, protocol, SETTINGS)
    image = np.full((32, 32, 3), 128, dtype=np.uint8)
    image[:16, :16, 0] = 255  # a red top-left quadrant
    (item,) = explainer.items(model, [Example("x", image, "red corner")])
    assert item.target == 1 and len(item.units) == 16  # a 4 x 4 feature map: 16 units
    attribution = explainer.attribute(model, item)
    pixels = item.inputs["pixel_values"]
    red = F.avg_pool2d(pixels, 8)[0, 0].flatten()
    with torch.no_grad():
        p = torch.softmax(model.logits({"pixel_values": pixels}), -1)[0, 1]
    alpha = 5 / 16  # d logit1 / d A_red(i, j), the same at every position
    np.testing.assert_allclose(attribution.units, alpha * red.numpy(), rtol=1e-4, atol=1e-7)
    assert set(np.argsort(-attribution.units)[:4]) == {0, 1, 4, 5}  # the top-left 2 x 2 cells
    assert attribution.map.shape == (32, 32)
    full = explainer.scores(model, item, np.ones((1, 16), dtype=bool))
    assert full[0] == pytest.approx(float(p), abs=1e-6)


def test_grad_cam_of_a_vision_transformer_reads_its_patch_token_grid() -> None:
    """A token-shaped backbone: Grad-CAM's cells are the patches; under a linear head on mean-pooled
    patch tokens each cell's value is w_target . token / N (the class activation map)."""
    from timm.models.vision_transformer import VisionTransformer

    from harness.backbones.spec import BackboneSpec
    from harness.backbones.vision import VisionBackbone
    from harness.explain.image import ImageExplainer

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, dynamic_img_size=True)
    backbone = VisionBackbone(BackboneSpec(name="tiny-vit", modality="image", factory=lambda s, a: None), vit,
                              _PoolBackbone.data_config)
    weights = torch.randn(2, 16)
    model = _model(backbone, 16, weights.tolist())
    explainer = ImageExplainer(_ImageTask(), backbone, TrainingProtocol("t", epochs=1), SETTINGS)
    assert "patch tokens" in explainer.method
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (item,) = explainer.items(model, [Example("x", image, "plain")])
    assert len(item.units) == 16  # 32 px / 8 px patches: a 4 x 4 grid
    attribution = explainer.attribute(model, item)
    pixels = item.inputs["pixel_values"]
    with torch.no_grad():
        tokens = vit.forward_features(pixels)[0, 1:]  # [16 patches, 16 channels]
    expected = tokens @ weights[item.target] / 16
    np.testing.assert_allclose(attribution.units, expected.numpy(), rtol=1e-3, atol=1e-7)
    assert attribution.map.shape == (32, 32)


# --- audio: occlusion finds the one block the model listens to ------------------------------------
class _BlockBackbone(nn.Module):
    """A model that only hears mel bins 0-9 during frames 20-29 (band 0, 200-300 ms)."""

    n_mels, sampling_rate, feature_dim, num_layers, num_hidden_states = 20, 16_000, 1, 0, 1

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features

    def log_mel(self, clips: list[np.ndarray]) -> torch.Tensor:
        return self.features.clone()[None]

    def forward(self, input_features: torch.Tensor, **_: Any) -> Features:
        heard = input_features[:, 0:10, 20:30].mean((1, 2))[:, None, None]
        mask = torch.ones(heard.shape[:2], dtype=torch.long)
        return Features(sequence=heard, hidden_states=(heard,), mask=mask, pooled=heard[:, 0])

    def layer_groups(self) -> list[nn.Module]:
        return []


class _AudioTask(AudioClassificationTask):
    label_names: ClassVar[tuple[str, ...]] = ("silence", "word")


def test_occlusion_attributes_only_the_heard_block() -> None:
    from harness.explain.audio import AudioExplainer

    features = torch.zeros(20, 50)
    features[:, :] = -1.0
    features[0:10, 20:30] = 1.0  # energy where the model listens
    features[10:20, 0:10] = 1.0  # energy it ignores
    backbone = _BlockBackbone(features)
    model = _model(backbone, 1, [[0.0], [4.0]])
    protocol = TrainingProtocol("t", epochs=1, inputs={"clip_seconds": 0.5})
    explainer = AudioExplainer(_AudioTask(), backbone, protocol, SETTINGS)
    (item,) = explainer.items(model, [Example("clip", np.zeros(8000, dtype=np.float32), "word")])
    assert item.target == 1 and len(item.units) == 2 * 5  # 2 bands x 5 windows of 100 ms
    attribution = explainer.attribute(model, item)
    heard = 0 * 5 + 2  # band 0, window 2
    p_full, p_silent = torch.sigmoid(torch.tensor(4.0)).item(), torch.sigmoid(torch.tensor(-4.0)).item()
    expected = np.zeros(10)
    expected[heard] = p_full - p_silent
    np.testing.assert_allclose(attribution.units, expected, atol=1e-6)
    assert attribution.map.shape == (2, 5)
    assert item.units[heard].startswith("200-300 ms")


# --- text: integrated gradients satisfy completeness, summed per word ---------------------------
def test_text_integrated_gradients_are_complete_and_per_word(tiny_text_backbone: Path) -> None:
    from harness.backbones.spec import resolve_backbone
    from harness.explain.text import SentenceClassificationExplainer
    from harness.task import get_task
    from harness.training.model import build_task_model

    task = get_task("sentiment")
    protocol = task.protocols["smoke"]
    spec = resolve_backbone(str(tiny_text_backbone), "text")
    torch.manual_seed(0)
    backbone = spec.build()
    model = build_task_model(task, spec, backbone, protocol, Adaptation.parse("full")).eval()
    explainer = SentenceClassificationExplainer(task, backbone, protocol, ExplainSettings(examples=1, ig_steps=64))
    (item,) = explainer.items(model, [Example("s", "unbelievably good, thanks!", "positive")])
    assert item.units == ["unbelievably", "good", ",", "thanks", "!"]  # sub-words are summed back into words
    attribution = explainer.attribute(model, item)
    keep_all, keep_none = np.ones((1, 5), dtype=bool), np.zeros((1, 5), dtype=bool)
    full, empty = explainer.scores(model, item, np.concatenate([keep_all, keep_none]))
    # completeness: attributions add up to f(input) - f(baseline), the baseline being every word removed
    assert attribution.units.sum() == pytest.approx(full - empty, abs=2e-3)
