"""Progress of long CLI work: a bar on a terminal, plain lines in a log.

On a terminal (stderr is a tty) :func:`progress` shows a transient rich bar. Anywhere else (a log
file, CI, ``nohup``) a bar would print nothing until the end, so it writes one plain line every
``every_s`` seconds instead: ``training: 12/20 epochs 3m05s <status>``. Both go to stderr, leaving
stdout to the command's summary line.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import TextIO

PLAIN_EVERY_S = 30.0
"""Seconds between plain progress lines when stderr is not a terminal."""


class ProgressReport:
    """One job's progress: ``update`` / ``advance`` it; see the module docstring."""

    def __init__(self, description: str, total: int, unit: str, every_s: float, stream: TextIO) -> None:
        self.description, self.total, self.unit, self.every_s = description, total, unit, every_s
        self.stream = stream
        self.completed, self.status = 0, ""
        self.start = self._last_line = time.monotonic()
        self._bar = None  # (rich Progress, task id) on a terminal

    def update(self, completed: int | None = None, *, advance: int = 0, status: str | None = None) -> None:
        """Set (or advance) the count and the status text; shows it as the mode says."""
        self.completed = (self.completed if completed is None else completed) + advance
        self.status = self.status if status is None else status
        if self._bar is not None:
            bar, task = self._bar
            bar.update(task, completed=min(self.completed, self.total), status=self.status)
        elif time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            print(self.line(), file=self.stream, flush=True)

    def advance(self) -> None:
        """One more unit done."""
        self.update(advance=1)

    def line(self) -> str:
        """``<description>: <completed>/<total> <unit> <elapsed> <status>``"""
        elapsed = int(time.monotonic() - self.start)
        parts = (f"{self.description}:", f"{self.completed}/{self.total}", self.unit,
                 f"{elapsed // 60}m{elapsed % 60:02d}s", self.status)
        return " ".join(part for part in parts if part)


@contextlib.contextmanager
def progress(
    description: str,
    total: int,
    unit: str = "",
    *,
    enabled: bool = True,
    every_s: float = PLAIN_EVERY_S,
    stream: TextIO | None = None,
) -> Iterator[ProgressReport]:
    """A :class:`ProgressReport` shown as a bar on a terminal, else as a plain line every ``every_s`` seconds
    (``enabled=False``: shown nowhere)."""
    stream = sys.stderr if stream is None else stream
    report = ProgressReport(description, total, unit, every_s if enabled else math.inf, stream)
    if not (enabled and stream.isatty()):
        yield report
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        report._bar = (bar, bar.add_task(description, total=total, status=""))
        yield report
