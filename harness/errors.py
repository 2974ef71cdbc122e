"""The two kinds of failure the CLI distinguishes, so it can map them to exit codes 2 and 1."""

import difflib
from collections.abc import Iterable
from typing import Any


class HarnessError(Exception):
    """Base of every error the harness reports as one clear line."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad usage or bad input: an unknown name, an invalid value, an unreadable file (exit 2)."""

    exit_code = 2


class RunFailed(HarnessError):
    """A run started and failed (non-finite loss, out of memory, ...) (exit 1)."""

    exit_code = 1


class RunInProgress(RunFailed):
    """Another process holds the run's lock: it is running (or being explained) elsewhere right now."""


class AlreadyComplete(HarnessError):
    """Raised by a claim that finds the run complete once it holds the lock: another process finished it
    while this one waited. Not an error for the user: the caller reuses `record`."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(f"run {record.get('run_id')} is already complete")
        self.record = record


class DamagedRecord(UsageError):
    """A stored run's files cannot be trusted (result.json not valid JSON or not a valid run record, unreadable
    weights or predictions): bad input, exit 2. Its message names the file and how to recover."""


class NothingToExplain(UsageError):
    """A run whose explained sample holds no output to explain (e.g. a NER model that predicts no entity)."""


def did_you_mean(name: str, known: Iterable[str], list_known: bool = True) -> str:
    """The tail of an unknown-name message: "; did you mean 'a' or 'b'?", else " (known: ...)" when
    `list_known`. One wording for tasks, backbones, leaderboards, run ids and timm models."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return f" (known: {', '.join(known) or 'none'})" if list_known else ""


def one_line(text: str, limit: int = 2000) -> str:
    """`text` on one line: line breaks (from a file name, a library's message, an argument) become spaces."""
    return " ".join(text.split("\n")).replace("\r", " ")[:limit]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type name when it has none:
    what a one-line error says about a failure inside a library."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
