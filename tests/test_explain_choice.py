"""Which explainer a task gets and which examples it explains: declared by the task, never inferred."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

from harness.errors import UsageError
from harness.explain.base import EXPLAIN_SETTINGS, Explainer, ExplainSettings, settings_for
from harness.explain.methods import EXPLAINERS, choose_explainer
from harness.explain.policy import PixelControlExplainer, VectorControlExplainer
from harness.explain.sampling import SAMPLE_SALT, sample_examples
from harness.explain.text import EntityExplainer, SentenceClassificationExplainer
from harness.task import Example

SETTINGS = ExplainSettings(examples=3)
TEXT_BACKBONE = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=0))
PROTOCOL = SimpleNamespace(name="smoke", inputs={}, test_limit=None)


class _Task:
    """A test double carrying the declared explain contract, as the task bases declare it."""

    spec = SimpleNamespace(name="double")
    explainer: ClassVar[str | None] = None
    explain_settings: ClassVar[dict[str, ExplainSettings]] = {}
    observation_names: ClassVar[tuple[str, ...]] = ()
    action_names: ClassVar[tuple[str, ...]] = ()
    label_names: ClassVar[tuple[str, ...]] = ("O", "B-x", "I-x")
    pixels = False

    def build_explainer(self, backbone: Any, protocol: Any, settings: ExplainSettings, device: str) -> Any:
        return None

    def observation_kind(self) -> str:
        return "pixels" if self.pixels else "vector"

    def load_split(self, split: str, limit: int | None = None) -> list[Example]:
        return [Example(f"e{i}", ["w"], ["O"]) for i in range(10)]


def _task(**attributes: Any) -> _Task:
    task = _Task()
    for name, value in attributes.items():
        setattr(task, name, value)
    return task


def test_a_task_names_its_built_in_explainer() -> None:
    assert set(EXPLAINERS) == {"entity", "sentence", "image", "audio", "policy"}
    chosen = choose_explainer(_task(explainer="sentence"), TEXT_BACKBONE, PROTOCOL, SETTINGS, "cpu")
    assert type(chosen) is SentenceClassificationExplainer and chosen.settings is SETTINGS
    assert type(choose_explainer(_task(explainer="entity"), TEXT_BACKBONE, PROTOCOL, SETTINGS, "cpu")) \
        is EntityExplainer


def test_the_policy_explainer_follows_the_observation_kind() -> None:
    vector = choose_explainer(_task(explainer="policy"), None, PROTOCOL, SETTINGS, "cpu")
    pixels = choose_explainer(_task(explainer="policy", pixels=True), None, PROTOCOL, SETTINGS, "cpu")
    assert type(vector) is VectorControlExplainer and type(pixels) is PixelControlExplainer


def test_a_task_that_builds_its_own_explainer_wins() -> None:
    own = object()
    task = _task(explainer="sentence", build_explainer=lambda backbone, protocol, settings, device: own)
    assert choose_explainer(task, TEXT_BACKBONE, PROTOCOL, SETTINGS, "cpu") is own


def test_a_task_without_an_explainer_is_a_one_line_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^task 'double' has no explainer: set `explainer` or define "
                                         r"build_explainer\(\)$"):
        choose_explainer(_task(), TEXT_BACKBONE, PROTOCOL, SETTINGS, "cpu")
    with pytest.raises(UsageError, match="unknown explainer 'nope'"):
        choose_explainer(_task(explainer="nope"), TEXT_BACKBONE, PROTOCOL, SETTINGS, "cpu")


def test_settings_come_from_the_task_then_the_protocol_defaults() -> None:
    own = ExplainSettings(examples=7)
    assert settings_for(_task(explain_settings={"smoke": own}), "smoke") is own
    assert settings_for(_task(), "smoke") == EXPLAIN_SETTINGS["smoke"]
    assert settings_for(_task(), "custom") == EXPLAIN_SETTINGS["quick"]


def _no_predictions() -> list[dict[str, Any]]:
    raise AssertionError("an explainer that samples from every row must not read the stored predictions")


def test_sampling_draws_from_every_row_with_the_run_seeded_generator() -> None:
    explainer = SentenceClassificationExplainer(_Task(), TEXT_BACKBONE, PROTOCOL, SETTINGS)
    sampled = sample_examples(_Task(), PROTOCOL, explainer, _no_predictions, 3, seed=5)
    expected = np.sort(np.random.default_rng([5, SAMPLE_SALT]).choice(10, size=3, replace=False))
    assert [e.id for e in sampled] == [f"e{i}" for i in expected]
    assert sample_examples(_Task(), PROTOCOL, explainer, _no_predictions, 3, seed=5) == sampled


def test_ner_samples_only_sentences_with_a_predicted_entity() -> None:
    explainer = EntityExplainer(_Task(), TEXT_BACKBONE, PROTOCOL, SETTINGS)
    stored = [{"id": f"e{i}", "pred": ["B-x", "I-x"] if i in (1, 4, 6, 8) else ["O", "O"]} for i in range(10)]
    sampled = sample_examples(_Task(), PROTOCOL, explainer, lambda: stored, 3, seed=0)
    candidates = ["e1", "e4", "e6", "e8"]
    expected = np.sort(np.random.default_rng([0, SAMPLE_SALT]).choice(4, size=3, replace=False))
    assert [e.id for e in sampled] == [candidates[i] for i in expected]


def test_the_default_candidates_are_all_rows() -> None:
    rows = _Task().load_split("test")
    assert Explainer.candidates(VectorControlExplainer(_Task(), SETTINGS), rows, _no_predictions) == rows
