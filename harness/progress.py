"""Progress for long work: a rich bar on a terminal, plain periodic lines otherwise (logs, CI)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("harness")


class ProgressReporter:
    def __init__(self, enabled: bool = True, min_interval_s: float = 15.0):
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.min_interval_s = min_interval_s

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Any]:
        """Yields update(advance=1, **stats). The last stats are logged when the phase ends."""
        started = time.perf_counter()
        state: dict[str, Any] = {"done": 0, "stats": {}, "last_print": started}
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                           console=Console(stderr=True), transient=True)
            task_id = bar.add_task(description, total=total, stats="")
            bar.start()
        else:
            bar = None

        def update(advance: int = 1, **stats: Any) -> None:
            state["done"] += advance
            state["stats"] = stats
            if bar is not None:
                bar.update(task_id, advance=advance, stats=_fmt(stats))
                return
            now = time.perf_counter()
            if self.enabled and now - state["last_print"] >= self.min_interval_s:
                state["last_print"] = now
                log.info("%s %d/%d %s", description, state["done"], total, _fmt(stats))

        try:
            yield update
        finally:
            if bar is not None:
                bar.stop()
            elapsed = time.perf_counter() - started
            if self.enabled:
                log.info("%s done: %d/%d in %.1fs %s", description, state["done"], total, elapsed,
                         _fmt(state["stats"]))


def _fmt(stats: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items())
