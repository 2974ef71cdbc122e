"""Every registered task and backbone passes the same checks (torchvision's weights-schema idea)."""

from __future__ import annotations

import pytest

from harness.backbones.spec import BACKBONES, resolve_backbone
from harness.protocol import PROTOCOL_NAMES, TrainingProtocol
from harness.task import MODALITIES, TASKS, SupervisedTask, TaskSpec

TASK_NAMES = TASKS.names()
BACKBONE_NAMES = BACKBONES.names()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_conforms(name: str) -> None:
    task = TASKS.get(name)()
    spec = task.spec
    assert isinstance(spec, TaskSpec) and spec.name == name
    assert spec.modality in MODALITIES
    assert spec.metrics and spec.version and spec.description and spec.license and spec.data_sources
    assert spec.default_protocol in task.protocols
    assert spec.default_backbone in BACKBONE_NAMES, "a task's default backbone must be registered"
    for protocol_name in PROTOCOL_NAMES:
        protocol = task.protocols[protocol_name]
        assert isinstance(protocol, TrainingProtocol) and protocol.name == protocol_name
        assert protocol.epochs >= 1 and protocol.batch_size >= 1
    assert isinstance(task, SupervisedTask)
    assert task.data_fingerprint() == task.data_fingerprint()
    splits = {s: task.load_split(s) for s in ("train", "dev", "test")}
    assert all(splits.values())
    ids = [e.id for rows in splits.values() for e in rows]
    assert len(ids) == len(set(ids)), "example ids must be unique across splits"
    smoke = task.protocols["smoke"]
    assert len(task.load_split("train", smoke.train_limit)) <= (smoke.train_limit or 10**9)
    assert task.load_split("test")[:5] == type(task)().load_split("test")[:5], "splits must be deterministic"


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_backbone_conforms(name: str) -> None:
    spec = BACKBONES.get(name)
    assert spec.name == name and spec.modality in MODALITIES
    assert spec.feature_dim and spec.num_layers and spec.license
    assert resolve_backbone(name, spec.modality) is spec
    asset = spec.resolve()  # offline: the packaged copy
    assert asset.path.is_dir() and asset.revision
