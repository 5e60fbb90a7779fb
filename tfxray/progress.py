"""Progress that reads well on a terminal and in a log file.

On a terminal, tqdm's bar. When stderr is not a terminal (a log file, CI, a pipe), no bar, no
ANSI codes and no carriage returns: one plain line at most every ``PLAIN_INTERVAL`` seconds (30;
``TFXRAY_PROGRESS_INTERVAL`` sets another) and one at the end, so an hour's run adds some 120
lines to a log, not a redraw every 0.1 s. ``tfxray --no-progress`` (or ``TFXRAY_NO_PROGRESS=1``) turns all progress off, Keras'
epoch lines included; tfxray's own result lines still print.
"""

from __future__ import annotations

import os
import sys
import time

NO_PROGRESS_ENV = "TFXRAY_NO_PROGRESS"
INTERVAL_ENV = "TFXRAY_PROGRESS_INTERVAL"
PLAIN_INTERVAL = 30.0  # seconds between plain progress lines (off a terminal)


def plain_interval() -> float:
    """Seconds between plain progress lines: TFXRAY_PROGRESS_INTERVAL, else ``PLAIN_INTERVAL``."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, "") or PLAIN_INTERVAL)
    except ValueError:
        return PLAIN_INTERVAL
    return value if value >= 0 else PLAIN_INTERVAL


def enabled() -> bool:
    return os.environ.get(NO_PROGRESS_ENV, "").strip().lower() not in ("1", "true", "yes")


def disable() -> None:
    """Turn progress off for this process and the processes it starts."""
    os.environ[NO_PROGRESS_ENV] = "1"


def on_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(getattr(stream, "isatty", None) and stream.isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False):
    """tqdm's bar on a terminal, plain periodic lines elsewhere, nothing when disabled.

    Use it like tqdm: wrap an iterable, or ``with progress(total=n) as bar: bar.update(k)``.
    """
    if disable or not enabled():
        return _Silent(iterable)
    if on_terminal():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    return _PlainLines(iterable, total=total, desc=desc, unit=unit)


def keras_verbose(verbose: int) -> int:
    """Keras' ``verbose`` for fit: 0 when progress is off; one line per epoch (2) instead of a bar
    (1) when stderr is not a terminal, so a log holds no escape codes."""
    if not enabled():
        return 0
    return 2 if (verbose == 1 and not on_terminal()) else verbose


class _Silent:
    def __init__(self, iterable=None):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _PlainLines(_Silent):
    """``desc: done/total unit (rate/s)`` on stderr, at most every ``plain_interval()`` seconds, and at the end."""

    def __init__(self, iterable=None, *, total=None, desc="", unit="it"):
        super().__init__(iterable)
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.done, self.start = 0, time.monotonic()
        self.last = self.start
        self.interval = plain_interval()
        self.closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line(now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        of = f"/{self.total}" if self.total is not None else ""
        rate = f" ({self.done / elapsed:.1f}/s)" if elapsed > 0 else ""
        print(f"{self.desc}: {self.done}{of} {self.unit}{rate}", file=sys.stderr, flush=True)
