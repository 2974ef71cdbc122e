"""The task contract: bases own modality, kind and metrics; registration rejects what cannot work; every
built-in task's metrics are the ones its base computes, and the primary metric's per-example statistics
reproduce the reported score (what leaderboard intervals and paired tests resample)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from harness import stats
from harness.control_tasks import ControlProtocol, ControlTask
from harness.errors import UsageError
from harness.image_tasks import ImageClassificationTask
from harness.metrics import MetricSpec
from harness.protocol import PROTOCOL_NAMES, TrainingProtocol, protocol_table
from harness.task import TASKS, Task, TaskSpec, _validate_task, register_task
from harness.text_tasks import SequenceClassificationTask, TokenClassificationTask

TABLE = protocol_table(**dict.fromkeys(PROTOCOL_NAMES, TrainingProtocol(epochs=1)))


def test_protocol_table_names_each_recipe_once() -> None:
    assert {k: v.name for k, v in TABLE.items()} == {p: p for p in PROTOCOL_NAMES}
    assert TrainingProtocol("smoke", epochs=1) == TABLE["smoke"]  # the positional name still works
    control = protocol_table(smoke=ControlProtocol(algo="ppo", total_timesteps=8))
    assert control["smoke"].name == "smoke" and control["smoke"].to_dict()["name"] == "smoke"


def test_the_base_fills_in_modality_kind_and_metrics() -> None:
    class Photos(ImageClassificationTask):
        spec = TaskSpec(name="photos", default_backbone="efficientnet-lite0", version="1")
        protocols = TABLE

    assert (Photos.spec.modality, Photos.spec.kind) == ("image", "image-classification")
    assert [m.name for m in Photos.spec.metrics] == ["top1", "macro_f1", "ece"]
    assert Photos.spec.primary.per_example is not None and Photos.explainer == "image"
    _validate_task("photos", Photos)

    class Balance(ControlTask):
        spec = TaskSpec(name="balance", default_backbone="mlp", version="1")
        protocols = TABLE
        env_id = "CartPole-v1"

    assert (Balance.spec.modality, Balance.spec.primary.name, Balance.explainer) == ("control", "iqm_return", "policy")


def test_a_spec_restating_the_base_still_registers() -> None:
    class OldStyle(SequenceClassificationTask):
        spec = TaskSpec(name="old-style", modality="text", kind="sequence-classification",
                        metrics=(MetricSpec("accuracy"), MetricSpec("macro_f1")), default_backbone="minilm",
                        version="1")
        protocols: ClassVar = {name: TrainingProtocol(name, epochs=1) for name in PROTOCOL_NAMES}

    assert _validate_task("old-style", OldStyle) is OldStyle


def test_register_task_rejects_a_primary_metric_the_task_does_not_compute() -> None:
    with pytest.raises(UsageError, match="'top1' is not computed"):
        @register_task
        class Mislabelled(SequenceClassificationTask):  # computes "accuracy", not "top1"
            spec = TaskSpec(name="mislabelled", default_backbone="minilm", version="1",
                            metrics=(MetricSpec("top1"),))
            protocols = TABLE
    assert "mislabelled" not in TASKS


def test_register_task_rejects_a_flipped_direction_and_misnamed_protocols() -> None:
    class Flipped(TokenClassificationTask):
        spec = TaskSpec(name="flipped", default_backbone="minilm", version="1",
                        metrics=(MetricSpec("entity_f1", higher_is_better=False),))
        protocols = TABLE

    with pytest.raises(UsageError, match="opposite direction"):
        _validate_task("flipped", Flipped)

    class Misnamed(SequenceClassificationTask):
        spec = TaskSpec(name="misnamed", default_backbone="minilm", version="1")
        protocols: ClassVar = {name: TrainingProtocol("quick", epochs=1) for name in PROTOCOL_NAMES}

    with pytest.raises(UsageError, match="protocol 'smoke' is named 'quick'"):
        _validate_task("misnamed", Misnamed)


def test_a_task_on_no_base_must_state_its_modality() -> None:
    class Bare(Task):
        spec = TaskSpec(name="bare", default_backbone="minilm", version="1", metrics=(MetricSpec("score"),))
        protocols = TABLE

    with pytest.raises(UsageError, match="modality must be one of"):
        _validate_task("bare", Bare)


def test_task_hooks_have_declared_defaults() -> None:
    task = SequenceClassificationTask.__new__(SequenceClassificationTask)
    assert task.build_explainer(None, None, None, "cpu") is None
    assert dict(Task.explain_settings) == {} and Task.accepts_data_dir is False
    assert SequenceClassificationTask.pooled_features and not TokenClassificationTask.pooled_features


@pytest.mark.parametrize("name", [n for n in TASKS.names() if TASKS.get(n).spec.modality != "control"])
def test_per_example_statistics_reproduce_the_primary_metric(name: str) -> None:
    """On made-up predictions: the primary metric from compute_metrics equals the reducer applied to the
    column sums of its per-example statistics, and compute_metrics returns every declared metric."""
    cls = TASKS.get(name)
    rng = np.random.default_rng(0)
    if not isinstance(cls.label_names, tuple):  # labels read from the user's data (speech-commands)
        cls = type(cls.__name__, (cls,), {"label_names": ("yes", "no", "up")})
    labels = list(cls.label_names)
    if cls.spec.kind == "token-classification":
        refs = [list(rng.choice(labels, size=int(rng.integers(1, 9)))) for _ in range(40)]
        preds = [[t if rng.random() < 0.6 else str(rng.choice(labels)) for t in ref] for ref in refs]
    else:
        refs = [str(rng.choice(labels)) for _ in range(40)]
        probs = rng.dirichlet(np.ones(len(labels)), size=len(refs))
        preds = [{"label": labels[int(p.argmax())], "probs": p.tolist()} for p in probs]
    task = cls.__new__(cls)
    scores = task.compute_metrics(preds, refs)
    assert set(scores) >= {m.name for m in cls.spec.metrics}
    primary = cls.spec.primary
    per_example = primary.example_statistics(preds, refs)
    assert per_example is not None and len(per_example) == len(refs)
    interval = stats.example_bootstrap(per_example, primary.reducer, n_resamples=50, seed=0)
    assert interval.estimate == pytest.approx(scores[primary.name])


class _Plain(SequenceClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(name="plain", default_backbone="minilm", version="1")
    protocols = TABLE


def test_the_spec_is_completed_once_where_it_is_written() -> None:
    class Child(_Plain):  # inherits the completed spec unchanged
        pass

    assert Child.spec is _Plain.spec and _Plain.spec.kind == "sequence-classification"
