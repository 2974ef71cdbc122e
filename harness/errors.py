"""The two kinds of failure the CLI distinguishes, so it can map them to exit codes 2 and 1."""


class HarnessError(Exception):
    """Base of every error the harness reports as one clear line."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad usage or bad input: an unknown name, an invalid value, an unreadable file (exit 2)."""

    exit_code = 2


class RunFailed(HarnessError):
    """A run started and failed (non-finite loss, out of memory, ...) (exit 1)."""

    exit_code = 1


class NothingToExplain(UsageError):
    """A run whose explained sample holds no output to explain (e.g. a NER model that predicts no entity)."""
