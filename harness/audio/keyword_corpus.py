"""A speech-commands-style keyword corpus, synthesised offline with eSpeak NG and cached on disk.

Every word is spoken by every voice (an English accent + a voice variant) at a few rates and pitches,
trimmed of silence, resampled to 16 kHz and centred in fixed-length clips. Whole voices are held out:
each voice lands in train, dev or test by the salted sha256 of its name, never clip by clip, so a test
score measures generalisation to unheard speakers.

Synthesis is not bit-reproducible (eSpeak adds random pitch flutter), so the corpus is generated once per
recipe into `<cache>/keywords/<recipe_hash>/` and reused. The `fingerprint` file is written last and
atomically; a directory without it is an interrupted generation and is regenerated. A file lock keeps two
processes from generating the same recipe at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from harness.audio import espeak
from harness.audio.wav import fit_length, read_wav, resample, write_wav
from harness.errors import UsageError
from harness.store import canonical_json, write_atomic

# Bump when the generation code changes what a recipe produces (trimming, naming, manifest layout).
RECIPE_VERSION = "keywords-v1"
MANIFEST_FORMAT = "keyword-manifest-v1"
SPLITS = ("train", "dev", "test")

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# en-shaw is left out: it is the Shavian *script*, not an accent.
ACCENTS = ("en", "en-us", "en-us-nyc", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("m1", "m3", "m7", "f1", "f3", "f5")  # three male and three female timbres, spread in base pitch
VOICES = tuple(f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS)

_FRAME_SECONDS = 0.01
_SILENCE_DB = 40.0  # frames this far below the loudest frame count as silence


@dataclass(frozen=True)
class KeywordRecipe:
    """Everything that determines the corpus; its hash names the cache directory."""

    words: tuple[str, ...] = WORDS
    voices: tuple[str, ...] = VOICES
    rates: tuple[int, ...] = (140, 190)  # words per minute; 140 keeps the slowest word well inside 1 s
    pitches: tuple[int, ...] = (35, 65)  # eSpeak base pitch, 50 = the variant's normal pitch
    sample_rate: int = 16000
    clip_samples: int = 16000  # 1.0 s at 16 kHz
    split_salt: str = "keywords-split-v1"
    dev_fraction: float = 0.1
    test_fraction: float = 0.2
    espeak_version: str = field(default_factory=lambda: _loader_version())

    def __post_init__(self) -> None:
        for name in ("words", "voices", "rates", "pitches"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise UsageError(f"KeywordRecipe.{name} must be non-empty and without duplicates, got {values!r}")
        if len(self.voices) < len(SPLITS):
            raise UsageError(f"KeywordRecipe needs one voice per split at least, got {len(self.voices)} voices")
        if not (self.dev_fraction > 0 and self.test_fraction > 0 and self.dev_fraction + self.test_fraction < 1):
            raise UsageError("KeywordRecipe dev/test fractions must be positive and sum to less than 1")

    @classmethod
    def small(cls) -> KeywordRecipe:
        """3 words x 4 voices x 1 rate x 1 pitch: a 12-clip corpus for tests."""
        return cls(words=("yes", "no", "up"), voices=("en-us+m1", "en-us+f3", "en-gb-x-rp+m3", "en-029+f1"),
                   rates=(175,), pitches=(50,))

    def to_json(self) -> dict[str, Any]:
        return {"recipe_version": RECIPE_VERSION, **{k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in asdict(self).items()}}

    @property
    def hash(self) -> str:
        return hashlib.sha256(canonical_json(self.to_json()).encode()).hexdigest()

    def splits(self) -> dict[str, str]:
        """voice -> split. Voices are ranked by salted sha256 and cut by quota, so no split is ever empty."""
        ranked = sorted(self.voices, key=lambda v: hashlib.sha256(f"{self.split_salt}:{v}".encode()).hexdigest())
        n_test = max(1, round(self.test_fraction * len(ranked)))
        n_dev = max(1, round(self.dev_fraction * len(ranked)))
        return {voice: "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
                for i, voice in enumerate(ranked)}


@dataclass(frozen=True)
class KeywordClip:
    id: str
    path: str  # relative to the corpus root
    word: str
    voice: str
    rate: int
    pitch: int
    split: str


@dataclass(frozen=True)
class KeywordCorpus:
    root: Path
    fingerprint: str
    recipe: KeywordRecipe
    clips: list[KeywordClip]

    @property
    def sample_rate(self) -> int:
        return self.recipe.sample_rate

    def split(self, name: str) -> list[KeywordClip]:
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return [clip for clip in self.clips if clip.split == name]

    def audio(self, clip: KeywordClip) -> np.ndarray:
        samples, _ = read_wav(self.root / clip.path)
        return samples

    def verify(self) -> None:
        """Re-hash every file against the stored fingerprint (slow-ish; generation does not need it)."""
        actual = _fingerprint(self.root, [c.path for c in self.clips])
        if actual != self.fingerprint:
            raise UsageError(f"keyword corpus {self.root} is corrupt (fingerprint {actual[:12]} != "
                             f"{self.fingerprint[:12]}); delete the directory to regenerate it")


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")


def corpus_dir(recipe: KeywordRecipe, cache_dir: Path | None = None) -> Path:
    """Where `recipe` lives: `<cache_dir or $HARNESS_CACHE_DIR>/keywords/<recipe_hash>/`."""
    return Path(cache_dir or default_cache_dir()) / "keywords" / recipe.hash


def ensure_corpus(recipe: KeywordRecipe, cache_dir: Path | None = None,
                  progress: Callable[[int, int], None] | None = None) -> KeywordCorpus:
    """The complete cached corpus for `recipe`, generating it first if it is missing or incomplete."""
    root = corpus_dir(recipe, cache_dir)
    corpus = _load(root, recipe)
    if corpus is not None:
        return corpus
    with _generation_lock(root):
        corpus = _load(root, recipe)  # another process may have finished while we waited for the lock
        if corpus is None:
            corpus = _generate(root, recipe, progress)
    return corpus


@contextlib.contextmanager
def _generation_lock(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released by the kernel even if this process dies
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _load(root: Path, recipe: KeywordRecipe) -> KeywordCorpus | None:
    """The corpus at `root` if generation finished there (fingerprint present, manifest and files intact)."""
    try:
        fingerprint = (root / "fingerprint").read_text().strip()
        manifest = json.loads((root / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("recipe_hash") != recipe.hash:
        return None
    try:
        clips = [KeywordClip(**row) for row in manifest["clips"]]
    except (KeyError, TypeError):  # a hand-edited or foreign manifest: regenerate rather than guess
        return None
    if not all((root / clip.path).is_file() for clip in clips):  # a stat per clip: cheap, unlike re-hashing
        return None
    return KeywordCorpus(root=root, fingerprint=fingerprint, recipe=recipe, clips=clips)


def _generate(root: Path, recipe: KeywordRecipe, progress: Callable[[int, int], None] | None) -> KeywordCorpus:
    if root.exists():
        shutil.rmtree(root)  # leftovers of an interrupted run: start clean so no stale clip survives
    root.mkdir(parents=True)
    splits = recipe.splits()
    jobs = [(word, voice, rate, pitch) for voice in recipe.voices for word in recipe.words
            for rate in recipe.rates for pitch in recipe.pitches]
    clips = []
    for done, (word, voice, rate, pitch) in enumerate(jobs, start=1):
        clip = _make_clip(word, voice, rate, pitch, splits[voice])
        write_wav(root / clip.path, _render(word, voice, rate, pitch, recipe), recipe.sample_rate)
        clips.append(clip)
        if progress is not None:
            progress(done, len(jobs))
    manifest = {"format": MANIFEST_FORMAT, "recipe_hash": recipe.hash, "recipe": recipe.to_json(),
                "clips": [asdict(c) for c in clips]}
    write_atomic(root / "recipe.json", canonical_json(recipe.to_json()) + "\n")
    write_atomic(root / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    fingerprint = _fingerprint(root, [c.path for c in clips])
    write_atomic(root / "fingerprint", fingerprint + "\n")  # last: its presence marks the corpus complete
    return KeywordCorpus(root=root, fingerprint=fingerprint, recipe=recipe, clips=clips)


def _make_clip(word: str, voice: str, rate: int, pitch: int, split: str) -> KeywordClip:
    stem = f"{voice.replace('+', '_')}_r{rate}_p{pitch}"
    return KeywordClip(id=f"{word}/{stem}", path=f"clips/{word}/{stem}.wav", word=word, voice=voice,
                       rate=rate, pitch=pitch, split=split)


def _render(word: str, voice: str, rate: int, pitch: int, recipe: KeywordRecipe) -> np.ndarray:
    samples, native_rate = espeak.synthesize(word, voice=voice, rate=rate, pitch=pitch)
    speech = trim_silence(samples, native_rate)
    if len(speech) == 0:
        raise UsageError(f"eSpeak NG produced only silence for {word!r} with voice {voice!r}")
    return fit_length(resample(speech, native_rate, recipe.sample_rate), recipe.clip_samples)


def trim_silence(samples: np.ndarray, rate: int, threshold_db: float = _SILENCE_DB) -> np.ndarray:
    """Drop leading/trailing 10 ms frames whose RMS is `threshold_db` below the loudest frame (one frame kept)."""
    frame = max(1, int(rate * _FRAME_SECONDS))
    n_frames = len(samples) // frame
    if n_frames == 0:
        return samples
    rms = np.sqrt(np.mean(samples[:n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
    if rms.max() == 0:
        return samples[:0]
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-threshold_db / 20))
    start = max(0, loud[0] - 1) * frame  # one frame of margin keeps soft onsets such as the /h/-like attack
    end = min(len(samples), (loud[-1] + 2) * frame)
    return samples[start:end]


def _fingerprint(root: Path, paths: list[str]) -> str:
    """sha256 over each clip's relative path and WAV bytes, in manifest order (labels live in the paths)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0")
        digest.update((root / path).read_bytes())
    return digest.hexdigest()


def _loader_version() -> str:
    try:
        return metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        return "missing"
