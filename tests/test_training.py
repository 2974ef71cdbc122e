"""The supervised loop on a tiny random BERT: adaptation modes, seeding, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.adaptation import Adaptation
from harness.backbones.spec import resolve_backbone
from harness.errors import RunFailed
from harness.progress import ProgressReporter
from harness.task import get_task
from harness.training.model import build_task_model
from harness.training.seeding import seed_everything
from harness.training.supervised import train_and_evaluate

TINY = dict(epochs=2, batch_size=8, eval_batch_size=16, train_limit=24, dev_limit=8, test_limit=8, lr=1e-3)


def _train(backbone_dir: Path, adapt: str, seed: int = 0, task=None, feature_cache=None, **protocol_changes):
    task = task or get_task("ner")
    protocol = task.protocols["smoke"].with_changes(**(TINY | protocol_changes))
    spec = resolve_backbone(str(backbone_dir), "text")
    seed_everything(seed)
    backbone = spec.build()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = build_task_model(task, spec, backbone, protocol, Adaptation.parse(adapt))
    result = train_and_evaluate(task, model, protocol, seed, "cpu", ProgressReporter(enabled=False),
                                feature_cache=feature_cache)
    after = model.backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    return result, changed


def test_frozen_keeps_backbone_weights(tiny_text_backbone: Path) -> None:
    result, changed = _train(tiny_text_backbone, "frozen", layer_mix="weighted")
    assert changed == set()
    assert set(result.trainable_state) == {"featurizer.logits", "head.classifier.weight", "head.classifier.bias"}
    assert 0.0 <= result.test.metrics["entity_f1"] <= 1.0
    assert len(result.test.preds) == len(result.test.refs) == 8


def test_partial_trains_only_top_layers(tiny_text_backbone: Path) -> None:
    _, changed = _train(tiny_text_backbone, "partial:1")
    assert changed, "the top layer should train"
    assert all(".layer.1." in k for k in changed), sorted(changed)


def test_full_trains_embeddings_too(tiny_text_backbone: Path) -> None:
    _, changed = _train(tiny_text_backbone, "full")
    assert any("embeddings" in k for k in changed)
    assert any(".layer.0." in k for k in changed)


def test_same_seed_same_result_different_seed_differs(tiny_text_backbone: Path) -> None:
    a, _ = _train(tiny_text_backbone, "full", seed=1)
    b, _ = _train(tiny_text_backbone, "full", seed=1)
    c, _ = _train(tiny_text_backbone, "full", seed=2)
    assert a.test.metrics == b.test.metrics
    assert a.dev_history == b.dev_history
    for name, tensor in a.trainable_state.items():
        assert torch.equal(tensor, b.trainable_state[name]), name
    assert any(not torch.equal(t, c.trainable_state[n]) for n, t in a.trainable_state.items())


def test_best_dev_epoch_is_the_one_tested(tiny_text_backbone: Path) -> None:
    result, _ = _train(tiny_text_backbone, "full", epochs=3)
    dev = [h["dev_entity_f1"] for h in result.dev_history]
    assert len(dev) == 3
    assert dev[result.best_epoch - 1] == max(dev)
    assert result.timing["train_s"] > 0 and result.timing["peak_mem_mb"] > 0


def test_non_finite_loss_stops_the_run(tiny_text_backbone: Path) -> None:
    class ExplodingNer(type(get_task("ner"))):
        def loss(self, model, batch):
            return super().loss(model, batch) * float("nan")

    with pytest.raises(RunFailed, match=r"loss became nan at epoch 1 step 1"):
        _train(tiny_text_backbone, "full", task=ExplodingNer())


def test_sequence_classification_on_tiny_backbone(tiny_text_backbone: Path) -> None:
    result, _ = _train(tiny_text_backbone, "full", task=get_task("sentiment"))
    assert set(result.test.metrics) == {"accuracy", "macro_f1", "ece"}
    assert {p["label"] for p in result.test.preds} <= {"negative", "neutral", "positive"}
    assert all(abs(sum(p["probs"]) - 1) < 1e-4 for p in result.test.preds)


def test_frozen_features_are_cached_and_reused(tiny_text_backbone: Path, tmp_path: Path) -> None:
    from harness.training.feature_cache import FeatureCache

    task = get_task("sentiment")
    identity = {"backbone": "tiny", "revision": "r1", "data": task.data_fingerprint()}

    def run(cache, seed=0):
        return _train(tiny_text_backbone, "frozen", seed=seed, task=task, layer_mix="weighted",
                      feature_cache=cache)[0]

    uncached = run(None)
    first = run(FeatureCache(identity, tmp_path))
    assert first.execution["feature_cache"] == "miss"
    second = run(FeatureCache(identity, tmp_path))
    assert second.execution["feature_cache"] == "hit"
    # a run on cached features reports what they cost when they were computed, split by split
    computed = {k: v for k, v in first.timing.items() if k.startswith("features_compute_")}
    assert set(computed) == {f"features_compute_{s}_s" for s in ("train", "dev", "test")}
    assert all(v > 0 for v in computed.values())
    assert {k: second.timing[k] for k in computed} == computed
    assert second.timing["features_s"] < sum(computed.values())
    assert uncached.test.metrics == first.test.metrics == second.test.metrics
    assert run(FeatureCache(identity, tmp_path), seed=1).execution["feature_cache"] == "hit"
    # another backbone revision is another cache entry; a damaged file is recomputed, not trusted
    assert run(FeatureCache(identity | {"revision": "r2"}, tmp_path)).execution["feature_cache"] == "miss"
    for path in (tmp_path / "features").rglob("*.safetensors"):
        path.write_bytes(b"garbage")
    assert run(FeatureCache(identity, tmp_path)).execution["feature_cache"] == "miss"
    assert run(FeatureCache(identity, tmp_path)).execution["feature_cache"] == "hit"


def test_cached_features_written_before_their_cost_was_recorded(tmp_path: Path) -> None:
    """A cache file from before `compute_s` existed is still used; its cost is unknown (None), never 0."""
    import torch
    from safetensors.torch import save

    from harness.store import canonical_json, write_atomic
    from harness.training.feature_cache import FORMAT, FeatureCache

    cache, ids = FeatureCache({"backbone": "b"}, tmp_path), ["a", "b"]
    features = torch.ones(2, 3, 4)
    write_atomic(cache.path("train", None), save({"features": features}, metadata={
        "ids": json.dumps(ids), "identity": canonical_json(cache.identity), "format": FORMAT}))
    assert torch.equal(cache.get("train", None, ids, lambda: torch.zeros(2, 3, 4)), features)
    assert cache.hits == {"train": True} and cache.compute_seconds == {"train": None}
    fresh = FeatureCache({"backbone": "b"}, tmp_path)
    fresh.get("test", None, ids, lambda: torch.zeros(2, 3, 4))
    assert fresh.hits == {"test": False} and fresh.compute_seconds["test"] >= 0
    again = FeatureCache({"backbone": "b"}, tmp_path)
    again.get("test", None, ids, lambda: torch.full((2, 3, 4), 9.0))
    assert again.hits == {"test": True} and again.compute_seconds == fresh.compute_seconds
