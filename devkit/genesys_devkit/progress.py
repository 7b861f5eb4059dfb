"""One short line per step, with how long it took: what ``make demo`` and ``make ui`` print.

On a terminal a step that takes a while shows its elapsed seconds as it runs; in a log (no terminal) each
step is one line when it ends. Everything else the tools run (pip, Airflow) writes to a log file instead.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


def seconds(value: float) -> str:
    """``0.4 s``, ``12 s``, ``2 min 05 s``: short enough for a line's end."""
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


class Steps:
    """Numbered steps: ``[2/6] Starting the Genesys Cloud emulator ... 0.1 s``."""

    def __init__(self, total: int, out: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.out = out or sys.stdout
        self.tty = self.out.isatty()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def heading(self, title: str) -> None:
        """The next step as a heading only, for lines that follow (``detail``)."""
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {title}:")

    def detail(self, text: str) -> None:
        """An indented line under the current step."""
        self.say(f"      {text}")

    @contextmanager
    def step(self, title: str, *, block: bool = False) -> Iterator[None]:
        """Run the body as the next step; print its title, then its duration (or FAILED).

        ``block``: the body prints lines of its own (``detail``), so the title is a line of its own and the
        duration comes on a last line.
        """
        self.done += 1
        started = time.monotonic()
        if block:
            self.say(f"[{self.done}/{self.total}] {title}:")
            try:
                yield
            except BaseException:
                self.detail(f"FAILED after {seconds(time.monotonic() - started)}")
                raise
            self.detail(f"done in {seconds(time.monotonic() - started)}")
            return
        head = f"[{self.done}/{self.total}] {title} ..."
        stop = threading.Event()
        ticker = None
        if self.tty:
            self.out.write(head)
            self.out.flush()

            def tick() -> None:
                while not stop.wait(1.0):
                    self.out.write(f"\r{head} {seconds(time.monotonic() - started)}")
                    self.out.flush()

            ticker = threading.Thread(target=tick, daemon=True)
            ticker.start()
        try:
            yield
        except BaseException:
            self._end(head, started, stop, ticker, "FAILED after ")
            raise
        self._end(head, started, stop, ticker, "")

    def _end(self, head: str, started: float, stop: threading.Event, ticker: threading.Thread | None,
             prefix: str) -> None:
        stop.set()
        if ticker is not None:
            ticker.join()
        line = f"{head} {prefix}{seconds(time.monotonic() - started)}"
        self.out.write(f"\r{line}\n" if self.tty else f"{line}\n")
        self.out.flush()
