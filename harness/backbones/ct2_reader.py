"""A reader for CTranslate2's `model.bin` format, with numpy only (ctranslate2 is not a dependency).

Format (binary version 6, little-endian): u32 version, string spec name, u32 revision, u32 variable count;
per variable: string name, u8 rank, rank x u32 dims, u8 dtype, u32 byte count, raw bytes; then u32 alias
count and (alias, target) string pairs. A string is a u16 length (counting a trailing NUL) and its bytes.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

SUPPORTED_BINARY_VERSIONS = (6,)

# CTranslate2 DataType ids -> how their bytes are stored. bf16 has no numpy type: read as u16, widen below.
_DTYPES: dict[int, np.dtype] = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
                                4: np.dtype("<f2"), 5: np.dtype("<u2")}
_BF16 = 5
_MAX_RANK = 8


@dataclass(frozen=True)
class Ct2Model:
    """A parsed model.bin: the spec name says which architecture the variables describe."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]


class _ChainedReader:
    """Reads several files as one byte stream, so a model.bin split into parts needs no joined copy on disk."""

    def __init__(self, files: Sequence[BinaryIO], label: str):
        self._files = list(files)
        self._label = label
        self.offset = 0

    def read(self, n: int, what: str) -> bytes:
        chunks: list[bytes] = []
        remaining = n
        while remaining and self._files:
            chunk = self._files[0].read(remaining)
            if not chunk:
                self._files.pop(0)
                continue
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining:
            raise ValueError(f"{self._label} is truncated: it ends at byte {self.offset + n - remaining} "
                             f"while reading {what} ({n} bytes from byte {self.offset})")
        self.offset += n
        return b"".join(chunks)

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        raw = self.read(self.unpack("<H", f"the length of {what}"), what)
        if not raw.endswith(b"\0"):
            raise ValueError(f"{self._label} is not a CTranslate2 model: {what} at byte {self.offset} "
                             "is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{self._label} is not a CTranslate2 model: {what} is not UTF-8") from None

    def at_end(self) -> bool:
        return not any(f.read(1) for f in self._files)


def read_ct2_model(paths: Sequence[Path]) -> Ct2Model:
    """Parse a CTranslate2 model.bin, given as one path or its parts in order; every float comes back float32."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no model.bin path given")
    label = str(paths[0]) if len(paths) == 1 else f"model.bin parts {', '.join(map(str, paths))}"
    with contextlib.ExitStack() as stack:
        stream = _ChainedReader([stack.enter_context(p.open("rb")) for p in paths], label)
        version = stream.unpack("<I", "the format version")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ValueError(f"{label} is not a supported CTranslate2 model: format version {version}, "
                             f"expected one of {SUPPORTED_BINARY_VERSIONS}")
        spec = stream.string("the spec name")
        revision = stream.unpack("<I", "the spec revision")
        variables: dict[str, np.ndarray] = {}
        for index in range(stream.unpack("<I", "the variable count")):
            name = stream.string(f"the name of variable {index}")
            variables[name] = _read_variable(stream, name, label)
        _read_aliases(stream, variables, label)
        if not stream.at_end():
            raise ValueError(f"{label} has unexpected bytes after its last alias (byte {stream.offset})")
    return Ct2Model(spec, revision, variables)


def _read_variable(stream: _ChainedReader, name: str, label: str) -> np.ndarray:
    rank = stream.unpack("<B", f"the rank of {name!r}")
    if rank > _MAX_RANK:
        raise ValueError(f"{label} is not a CTranslate2 model: variable {name!r} has rank {rank}")
    dims = tuple(stream.unpack("<I", f"the shape of {name!r}") for _ in range(rank))
    code = stream.unpack("<B", f"the dtype of {name!r}")
    if code not in _DTYPES:
        raise ValueError(f"{label}: variable {name!r} has unknown dtype id {code}")
    nbytes = stream.unpack("<I", f"the size of {name!r}")
    expected = int(np.prod(dims, dtype=np.int64)) * _DTYPES[code].itemsize
    if nbytes != expected:
        raise ValueError(f"{label}: variable {name!r} of shape {dims} holds {nbytes} bytes, expected {expected}")
    array = np.frombuffer(stream.read(nbytes, f"the data of {name!r}"), dtype=_DTYPES[code]).reshape(dims)
    if code == _BF16:  # bf16 is the top half of a float32
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32) if array.dtype.kind == "f" else array.copy()


def _read_aliases(stream: _ChainedReader, variables: dict[str, np.ndarray], label: str) -> None:
    """Add each alias as a second name for its target's array (CTranslate2 stores tied weights this way)."""
    for index in range(stream.unpack("<I", "the alias count")):
        alias, target = stream.string(f"alias {index}"), stream.string(f"the target of alias {index}")
        if target not in variables:
            raise ValueError(f"{label}: alias {alias!r} points at unknown variable {target!r}")
        variables[alias] = variables[target]


def read_ct2_variables(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model.bin (aliases resolved to the same array); ValueError if malformed."""
    return read_ct2_model(paths).variables
