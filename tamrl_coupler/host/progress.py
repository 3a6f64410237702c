"""Progress of the offline driver: a tqdm bar on a terminal, a short line every ~10 % anywhere else.

Why: tqdm redraws its bar with carriage returns many times a second; in a CI log or a batch job's output file
(stderr not a terminal) every redraw becomes a line and floods the log. There one plain line per tenth of the
run (steps done, elapsed time, estimated time left) says the same.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class LineProgress:
    """Prints ``{desc}: {done}/{total} {unit}s ({percent} %), {elapsed} s elapsed, ~{left} s left`` every ``every``
    fraction of ``total`` (and at the end), flushed, one line each."""

    def __init__(self, total: int, desc: str, stream: TextIO, every: float = 0.1, unit: str = "step"):
        self.total = int(total)
        self.desc = desc
        self.unit = unit
        self.stream = stream
        self.step = max(1, int(round(self.total * every)))
        self.done = 0
        self._next = self.step
        self._t0 = time.perf_counter()
        self._closed = False

    def update(self, n: int = 1) -> None:
        if n <= 0:
            return
        self.done += n
        if self.done >= self._next or self.done == self.total:
            self._line()
            while self._next <= self.done:
                self._next += self.step

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._t0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        self.stream.write(f"{self.desc}: {self.done}/{self.total} {self.unit}s ({pct:.0f} %), {elapsed:.1f} s elapsed, "
                          f"~{left:.0f} s left\n")
        self.stream.flush()

    def close(self) -> None:
        if not self._closed and self.done and self.done != self.total and self.done % self.step:
            self._line()  # where a stopped run got to
        self._closed = True


def make_progress(total: int, desc: str = "coupling steps", mode: str = "auto",
                  stream: TextIO | None = None, unit: str = "step") -> Any:
    """A progress reporter with ``update(n)`` and ``close()``, or None for ``mode="none"``.

    ``mode``: ``auto`` (the tqdm bar when ``stream`` is a terminal, lines otherwise), ``bar``, ``lines``, ``none``.
    """
    if mode not in ("auto", "bar", "lines", "none"):
        raise ValueError(f"progress mode {mode!r}: expected auto, bar, lines or none")
    if mode == "none":
        return None
    stream = sys.stderr if stream is None else stream
    if mode == "auto":
        isatty = getattr(stream, "isatty", None)
        mode = "bar" if callable(isatty) and isatty() else "lines"
    if mode == "bar":
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream)
    return LineProgress(total, desc, stream, unit=unit)
