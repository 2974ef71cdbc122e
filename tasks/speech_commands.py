"""`speech-commands`: Google Speech Commands (Warden 2018) from a user-given directory.

Layout (as released): `<dir>/<word>/<speaker>_nohash_<n>.wav` for every word folder, plus
`validation_list.txt` and `testing_list.txt` naming the dev and test clips (paths relative to <dir>);
every other clip is training data. `_background_noise_` is not a class. Classes are the word folders
found (35 in v0.02, 30 in v0.01). Clips are 16-bit PCM WAV, 1 s at 16 kHz. Metrics: accuracy, macro-F1, ECE.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

from harness.audio_tasks import AudioClassificationTask
from harness.classification import classification_metrics
from harness.errors import UsageError
from harness.fingerprints import named_files_fingerprint
from harness.protocol import TrainingProtocol, protocol_table
from harness.task import Example, TaskSpec, register_task


@register_task
class SpeechCommandsTask(AudioClassificationTask):
    spec: ClassVar[TaskSpec] = TaskSpec(
        name="speech-commands",
        metrics=classification_metrics(),
        default_backbone="whisper-tiny-en",
        version="1",
        description="Google Speech Commands word classification, official validation/testing lists",
        license="CC-BY-4.0",
        citation="Warden 2018, Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition",
        data_sources=("--data-dir with the extracted speech_commands_v0.0x archive",),
        default_adapt="frozen",
    )
    accepts_data_dir: ClassVar[bool] = True
    protocols: ClassVar[dict[str, TrainingProtocol]] = protocol_table(
        smoke=TrainingProtocol(epochs=2, batch_size=16, head_lr=3e-3, layer_mix="weighted",
                               train_limit=64, dev_limit=32, test_limit=64, inputs={"clip_seconds": 1.0}),
        quick=TrainingProtocol(epochs=20, batch_size=64, head_lr=3e-3, layer_mix="weighted",
                               train_limit=10000, dev_limit=2000, test_limit=4000, inputs={"clip_seconds": 1.0}),
        standard=TrainingProtocol(epochs=10, batch_size=64, lr=5e-5, head_lr=1e-3,
                                  layer_mix="weighted", inputs={"clip_seconds": 1.0}),
    )

    def __init__(self, data_dir: str | None = None) -> None:
        super().__init__(data_dir)
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            if self.data_dir is None:
                raise UsageError("speech-commands needs --data-dir DIR (the extracted Speech Commands archive)")
            root = Path(self.data_dir).expanduser()
            if not root.is_dir():
                raise UsageError(f"--data-dir {root} is not a directory")
            if not self._words(root):
                raise UsageError(f"--data-dir {root} has no word folders with .wav files (Speech Commands layout)")
            self._root = root
        return self._root

    @staticmethod
    def _words(root: Path) -> list[str]:
        return sorted(p.name for p in root.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.wav")))

    @property
    def label_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._words(self.root))

    def _listed(self, name: str) -> set[str]:
        path = self.root / name
        if not path.is_file():
            raise UsageError(f"--data-dir {self.root} lacks {name} (it names the official split)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:  # unreadable or not text: bad input, one line
            raise UsageError(f"--data-dir {self.root}: {name} is not a readable text file ({exc})") from None
        return {line.strip() for line in text.splitlines() if line.strip()}

    def data_fingerprint(self) -> str:
        """Content digest of everything a run reads: both split lists and every clip of every word folder,
        with their relative names. Each file's digest is remembered by its size, mtime, ctime and inode
        (harness.fingerprints), so only new or changed clips are re-read; a same-sized replacement is."""
        for name in ("validation_list.txt", "testing_list.txt"):
            self._listed(name)  # one clear line when a list is missing
        clips = [f"{word}/{wav.name}" for word in self.label_names for wav in sorted((self.root / word).glob("*.wav"))]
        return named_files_fingerprint(self.root, ["validation_list.txt", "testing_list.txt", *clips])

    def read_splits(self) -> dict[str, list[Example]]:
        dev, test = self._listed("validation_list.txt"), self._listed("testing_list.txt")
        splits: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
        for word in self.label_names:
            for wav in sorted((self.root / word).glob("*.wav")):
                relative = f"{word}/{wav.name}"
                split = "test" if relative in test else "dev" if relative in dev else "train"
                splits[split].append(Example(f"sc-{relative}", str(wav), word))
        for split, rows in splits.items():  # a fixed pseudo-random order, so protocol limits mix classes
            rows.sort(key=lambda e: hashlib.sha256(e.id.encode()).digest())
            if not rows:
                raise UsageError(f"--data-dir {self.root}: the {split} split is empty")
        return splits
