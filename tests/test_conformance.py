"""Every registered task and backbone passes the same checks (torchvision's weights-schema idea)."""

from __future__ import annotations

import pytest

from harness.assets import SourceKind
from harness.backbones.spec import BACKBONES, resolve_backbone
from harness.control_tasks import ControlProtocol, ControlTask
from harness.errors import UsageError
from harness.packaged_assets import ASSETS
from harness.protocol import PROTOCOL_NAMES, TrainingProtocol
from harness.task import MODALITIES, TASKS, SupervisedTask, TaskSpec
from harness.validation import validate

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
    assert BACKBONES.get(spec.default_backbone).modality == spec.backbone_kind
    if spec.modality == "control":
        _check_control_task(task)
        return
    for protocol_name in PROTOCOL_NAMES:
        protocol = task.protocols[protocol_name]
        assert isinstance(protocol, TrainingProtocol) and protocol.name == protocol_name
        assert protocol.epochs >= 1 and protocol.batch_size >= 1
    # splits, ids, stability, fingerprint and labels: test_task_passes_validate (the checks of harness validate)
    reason = _needs_user_data(name)
    if reason:  # its data is the user's to give (tested with written data elsewhere)
        pytest.skip(reason)
    assert isinstance(task, SupervisedTask)
    smoke = task.protocols["smoke"]
    assert len(task.load_split("train", smoke.train_limit)) <= (smoke.train_limit or 10**9)


def _needs_user_data(name: str) -> str | None:
    task = TASKS.get(name)()
    if task.accepts_data_dir:
        try:
            task.data_fingerprint()
        except UsageError as exc:
            return f"no default data for {name}: {exc}"
    return None


# Every built-in task is smoke-run, rerun and explained through the CLI in its own tests; here the checks that
# train nothing run for all of them, and the whole checklist, runs included, for one.
WITH_RUNS = "sentiment"


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_passes_validate(name: str) -> None:
    """The checks of `harness validate`, the same for every registered task: spec, splits, stability, labels
    (and for one task a smoke run on a few examples, the same seed again with identical metrics, and its
    explanation)."""
    reason = _needs_user_data(name)
    if reason:
        pytest.skip(reason)
    runs = name == WITH_RUNS
    results = validate(name, runs=runs, examples=4, device="cpu")
    failed = [f"{r.name}: {r.detail}" for r in results if r.passed is False]
    assert not failed, failed
    checks = ["spec", "splits", "stable", "labels"] + ["smoke run", "repeat", "explain"] * runs
    assert [r.name for r in results] == checks


def _check_control_task(task) -> None:
    assert isinstance(task, ControlTask)
    assert task.spec.primary.name == "iqm_return" and task.spec.primary.higher_is_better
    for protocol_name in PROTOCOL_NAMES:
        protocol = task.protocols[protocol_name]
        assert isinstance(protocol, ControlProtocol) and protocol.name == protocol_name
        assert protocol.eval_episodes >= (20 if protocol_name != "smoke" else 1)
        env = task.make_env(protocol)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        env.step(env.action_space.sample())
        env.close()
    assert task.data_fingerprint() == task.data_fingerprint()


def _optional_and_missing(name: str) -> str | None:
    """Why a backbone cannot be built here: an optional packaged asset that is not installed (CI has no mpnet)."""
    for asset in ASSETS:
        if asset.backbone == name and not asset.core and asset.missing():
            return f"{name} is an optional asset, not installed here ({asset.install_command()})"
    return None


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_backbone_conforms(name: str) -> None:
    spec = BACKBONES.get(name)
    assert spec.name == name and spec.modality in MODALITIES
    assert spec.license
    # Dimensions may be unknown until built only for backbones shaped by the task (the control MLP).
    assert (spec.feature_dim and spec.num_layers) or spec.modality == "control"
    assert resolve_backbone(name, spec.modality) is spec
    if reason := _optional_and_missing(name):
        with pytest.raises(UsageError, match="harness assets install"):
            spec.resolve()  # and the error names the command that installs it
        pytest.skip(reason)
    asset = spec.resolve()  # offline: the packaged copy
    assert asset.path.is_dir() and asset.revision
    assert asset.kind in (SourceKind.PACKAGE, SourceKind.RANDOM_INIT)
    assert asset.pretrained == (asset.kind is SourceKind.PACKAGE)


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_backbone_metadata_matches_the_built_model(name: str) -> None:
    """Declared feature_dim, num_layers and params are what the loaded weights really have."""
    spec = BACKBONES.get(name)
    if spec.params is None:
        pytest.skip(f"{name} is shaped by its task; its size is recorded per run")
    if reason := _optional_and_missing(name):
        pytest.skip(reason)
    backbone = spec.build()
    if hasattr(backbone, "configure"):  # e.g. Whisper: count the full 30 s positional table, as published
        backbone.configure({"clip_seconds": 30.0})
    assert backbone.feature_dim == spec.feature_dim
    assert backbone.num_layers == spec.num_layers
    assert sum(p.numel() for p in backbone.parameters()) == spec.params
    assert len(backbone.layer_groups()) >= 2
