"""Speech synthesis with the eSpeak NG library bundled by `espeakng-loader`, driven through ctypes.

eSpeak NG keeps all of its state in C globals (current voice, parameters, the synth callback), so the
library is initialised once per process and every synthesis runs under one lock. Audio comes back through
a callback in synchronous mode: `espeak_Synth` returns only once the whole utterance has been delivered.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from pathlib import Path

import numpy as np

from harness.errors import UsageError

# Constants from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report missing data with an error code instead of calling exit()
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
_RATE_RANGE = (80, 450)  # espeakRATE_MINIMUM / MAXIMUM, words per minute

# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events); the events are not needed.
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()


class _Engine:
    """The loaded library, its sample rate and the buffer the callback fills for the current utterance."""

    def __init__(self) -> None:
        lib_path, data_dir = _library_paths()
        try:
            lib = ctypes.CDLL(str(lib_path))
        except OSError as exc:
            raise UsageError(f"cannot load the eSpeak NG library {lib_path}: {exc}") from exc
        _declare(lib)
        # path is the folder that *contains* espeak-ng-data; every espeak-ng version accepts that form.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_dir.parent).encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise UsageError(f"eSpeak NG failed to initialise with data {data_dir} (code {rate})")
        self.lib = lib
        self.sample_rate = int(rate)
        self.data_dir = data_dir
        self.chunks: list[bytes] = []
        # The CFUNCTYPE object must outlive every call into the library, or the C side calls freed memory.
        self._callback = _CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes._Pointer, numsamples: int, _events: int) -> int:
        if wav and numsamples > 0:  # wav is NULL at the end; numsamples may be 0 mid-stream
            self.chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0  # 0 = continue

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        self.chunks = []
        # Voice first: selecting a voice (and its variant) can reset the prosody parameters.
        if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise UsageError(f"unknown eSpeak NG voice {voice!r} (see harness.audio.espeak.english_voices())")
        self._check(self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0), "set rate")
        self._check(self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0), "set pitch")
        data = text.encode("utf-8") + b"\0"
        self._check(self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None), "synthesise")
        self._check(self.lib.espeak_Synchronize(), "synchronise")
        pcm = np.frombuffer(b"".join(self.chunks), dtype="<i2")
        self.chunks = []
        return (pcm.astype(np.float32) / 32768.0).clip(-1.0, 1.0)

    @staticmethod
    def _check(code: int, what: str) -> None:
        if code != _EE_OK:
            raise UsageError(f"eSpeak NG could not {what} (error code {code})")


_engine: _Engine | None = None


def _library_paths() -> tuple[Path, Path]:
    try:
        import espeakng_loader
    except ImportError as exc:
        raise UsageError("speech synthesis needs the 'espeakng-loader' package (pip install espeakng-loader)") from exc
    try:
        return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())
    except RuntimeError as exc:  # the loader raises RuntimeError when its data folder is missing
        raise UsageError(f"espeakng-loader is installed without its data: {exc}") from exc


def _declare(lib: ctypes.CDLL) -> None:
    """Exact C signatures, so ctypes neither truncates pointers nor guesses return types."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int


def _get_engine() -> _Engine:
    """The process-wide engine; call with `_lock` held."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    """The rate eSpeak NG synthesises at (22050 Hz for the bundled data)."""
    with _lock:
        return _get_engine().sample_rate


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Speak `text`: float32 mono samples in [-1, 1] and their sample rate.

    `voice` is a language/accent name, optionally with a variant ("en-gb-scotland+f2"); `rate` is words
    per minute (80-450) and `pitch` the base pitch (0-100, 50 = the voice's normal pitch).
    """
    if not text.strip():
        raise UsageError("cannot synthesise empty text")
    if not _RATE_RANGE[0] <= rate <= _RATE_RANGE[1]:
        raise UsageError(f"speech rate {rate} is outside {_RATE_RANGE[0]}-{_RATE_RANGE[1]} words per minute")
    if not 0 <= pitch <= 100:
        raise UsageError(f"pitch {pitch} is outside 0-100")
    _check_variant(voice)
    with _lock:
        engine = _get_engine()
        return engine.synthesize(text, voice, rate, pitch), engine.sample_rate


def _check_variant(voice: str) -> None:
    # eSpeak NG silently ignores an unknown variant, which would quietly merge two "different" voices.
    _, _, variant = voice.partition("+")
    if variant and variant not in _variant_set():
        raise UsageError(f"unknown eSpeak NG voice variant {variant!r} in {voice!r} (see variant_names())")


def english_voices() -> list[str]:
    """English language/accent voices in the bundled data, lower-case as eSpeak NG accepts them (en, en-us, ...)."""
    _, data_dir = _library_paths()
    names = {p.name.lower() for p in (data_dir / "lang").rglob("en*") if p.is_file() and _is_english(p.name)}
    return sorted(names)


@functools.cache
def _variant_set() -> frozenset[str]:
    return frozenset(variant_names())


def variant_names() -> list[str]:
    """Voice variants (m1..m8, f1..f5, ...) usable as a suffix: "en-us+f2"."""
    _, data_dir = _library_paths()
    return sorted(p.name for p in (data_dir / "voices" / "!v").iterdir() if p.is_file() and " " not in p.name)


def _is_english(filename: str) -> bool:
    # "en" and "en-<region>"; other files starting with "en" (none today) would need the hyphen.
    return filename.lower() == "en" or filename.lower().startswith("en-")
