"""Progress for long work: a rich bar on a terminal, plain periodic lines otherwise (logs, CI).

Phases nest (a leaderboard's cells, then one run's epochs): on a terminal they share one live display,
one bar per open phase, and the harness log lines printed meanwhile go above the bars."""

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
        self._bar: Any = None  # the rich display the open phases share, on a terminal
        self._open = 0
        self._rerouted: list[tuple[logging.StreamHandler, Any]] = []  # (handler, its stream before the bars)

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Any]:
        """Yields update(advance=1, **stats). The last stats are logged when the phase ends."""
        started = time.perf_counter()
        state: dict[str, Any] = {"done": 0, "stats": {}, "last_print": started}
        bar = self._enter_bar() if self.interactive else None
        task_id = bar.add_task(description, total=total, stats="") if bar is not None else None

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
                bar.remove_task(task_id)
                self._leave_bar()
            elapsed = time.perf_counter() - started
            if self.enabled:
                log.info("%s done: %d/%d in %.1fs %s", description, state["done"], total, elapsed,
                         _fmt(state["stats"]))

    def _enter_bar(self) -> Any:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            original = sys.stderr
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                                 console=Console(stderr=True), transient=True, speed_estimate_period=600)
            self._bar.start()  # from here sys.stderr prints above the bars: send the harness log there too
            self._rerouted = [(h, original) for h in log.handlers
                              if type(h) is logging.StreamHandler and h.stream is original]
            for handler, _ in self._rerouted:
                handler.setStream(sys.stderr)
        self._open += 1
        return self._bar

    def _leave_bar(self) -> None:
        self._open -= 1
        if self._open == 0:
            for handler, original in self._rerouted:
                handler.setStream(original)
            self._rerouted = []
            self._bar.stop()
            self._bar = None


def _fmt(stats: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items())
