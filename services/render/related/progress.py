"""A progress bar on stderr for long operator commands (reindex, related-eval).

stdout stays clean for results; on a terminal the bar redraws in place, elsewhere (logs,
CI) it prints a line every tenth so the log shows progress without thousands of lines.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn_at = 0.0
        self._tenth = -1

    def advance(self, step: int = 1) -> None:
        self.done += step
        now = time.monotonic()
        if self.tty and now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif not self.tty and self.total:
            tenth = self.done * 10 // self.total
            if tenth != self._tenth:
                self._tenth = tenth
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def finish(self) -> None:
        self.stream.write(("\r" if self.tty else "") + self.line() + "\n")
        self.stream.flush()

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        filled = int(WIDTH * min(share, 1.0))
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {share:4.0%} {rate:,.0f}/s"
