"""`keywords`: spoken keyword spotting on a speech-commands-style set synthesised offline with eSpeak NG.

No recorded speech corpus installs offline, so the harness synthesises one (harness.audio.keyword_corpus):
the ten Speech Commands words (yes, no, up, down, left, right, on, off, stop, go) said by many English
voices (accents x voice variants) at several rates and pitches, as 1 s 16 kHz clips. Whole voices are
held out: no test voice is heard in training. Synthesis is not bit-deterministic between processes, so
the set is generated once into the cache and reused; its fingerprint (sha256 of every WAV) is the
data fingerprint of every run. Metrics: accuracy, macro-F1, ECE.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.audio_tasks import AudioClassificationTask
from harness.classification import classification_metrics
from harness.protocol import SEARCH_AUDIO, SEARCH_SMOKE, TrainingProtocol, protocol_table
from harness.task import Example, TaskSpec, register_task

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


@register_task
class KeywordsTask(AudioClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="keywords",
        metrics=classification_metrics(),
        default_backbone="whisper-tiny-en",
        version="1",
        description="10 spoken command words synthesised with eSpeak NG; test voices never heard in training",
        license="GPL-3.0-or-later (eSpeak NG voices used to synthesise the clips)",
        citation="Warden 2018, Speech Commands (word list); eSpeak NG",
        data_sources=("synthesised with pypi:espeakng-loader into the harness cache",),
        default_adapt="frozen",
    )
    label_names: ClassVar[tuple[str, ...]] = WORDS
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=2, batch_size=16, head_lr=3e-3, layer_mix="weighted",
                               train_limit=64, dev_limit=32, test_limit=64, inputs={"clip_seconds": 1.0},
                               search=SEARCH_SMOKE),
        quick=TrainingProtocol(epochs=30, batch_size=32, head_lr=3e-3, weight_decay=0.0,
                               layer_mix="weighted", inputs={"clip_seconds": 1.0}, search=SEARCH_AUDIO),
        standard=TrainingProtocol(epochs=20, batch_size=32, lr=5e-5, head_lr=1e-3,
                                  layer_mix="weighted", inputs={"clip_seconds": 1.0}, search=SEARCH_AUDIO),
    )

    def _corpus(self) -> Any:
        from harness.audio.keyword_corpus import KeywordRecipe, ensure_corpus

        if "_corpus_obj" not in self.__dict__:
            self._corpus_obj = ensure_corpus(KeywordRecipe(words=WORDS))
        return self._corpus_obj

    def data_fingerprint(self) -> str:
        return "sha256:" + self._corpus().fingerprint.removeprefix("sha256:")

    def read_splits(self) -> dict[str, list[Example]]:
        corpus = self._corpus()
        splits: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
        for clip in corpus.clips:
            splits[clip.split].append(Example(f"kw-{clip.id}", str(corpus.root / clip.path), clip.word))
        return splits
