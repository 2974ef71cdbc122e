"""A zip archive shipped as numbered parts (`x.zip.001`, `x.zip.002`, ...) in several PyPI distributions.

The parts are read as one seekable stream (never concatenated on disk) and extracted into a staging folder that
is renamed into place only when every file is out and checked: an interrupted extraction leaves no folder that
looks complete, and two processes extracting at once both end with the same finished folder.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from harness.errors import UsageError

SKIPPED_MEMBERS = ("desktop.ini", ".DS_Store")  # operating-system clutter some uploads carry


class ConcatenatedParts(io.RawIOBase):
    """Read-only, seekable view of files laid end to end (what zipfile needs to read a split archive)."""

    def __init__(self, parts: Sequence[Path]):
        super().__init__()
        self._paths = list(parts)
        sizes = [p.stat().st_size for p in self._paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._ends = [start + size for start, size in zip(self._starts, sizes, strict=True)]
        self._size = sum(sizes)
        self._handles = [p.open("rb") for p in self._paths]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view) and self._position < self._size:
            part = bisect_right(self._starts, self._position) - 1
            handle = self._handles[part]
            handle.seek(self._position - self._starts[part])
            wanted = min(len(view) - filled, self._ends[part] - self._position)
            got = handle.readinto(view[filled:filled + wanted])
            if not got:
                break
            filled += got
            self._position += got
        return filled

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def _safe_members(archive: zipfile.ZipFile, where: str) -> list[zipfile.ZipInfo]:
    """Members to extract; an absolute path or one that climbs out (`..`) is refused, not skipped."""
    members = []
    for info in archive.infolist():
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts:
            raise UsageError(f"{where}: the archive holds an unsafe path '{info.filename}'; not extracting it")
        if name.name not in SKIPPED_MEMBERS:
            members.append(info)
    return members


def extract_split_zip(parts: Sequence[Path], destination: Path, required: Iterable[str],
                      where: str = "split archive") -> Path:
    """Extract the archive laid out in `parts` into `destination` (created atomically) and return it. `required`:
    paths (relative to `destination`) that must be there afterwards, else UsageError naming the missing one.
    A finished `destination` is returned as it is."""
    if destination.is_dir():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        with ConcatenatedParts(parts) as stream, zipfile.ZipFile(io.BufferedReader(stream, 1 << 20)) as archive:
            archive.extractall(staging, members=_safe_members(archive, where))
        missing = [r for r in required if not (staging / r).exists()]
        if missing:
            raise UsageError(f"{where}: the archive has no {missing[0]}; the parts are not the expected model")
        try:
            staging.rename(destination)
        except OSError:  # another process finished first: use its folder
            if not destination.is_dir():
                raise
    except zipfile.BadZipFile as exc:  # also a member whose CRC-32 does not match: a damaged part
        raise UsageError(f"{where}: not a readable zip archive ({exc}); reinstall the parts") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return destination
