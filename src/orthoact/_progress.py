"""Progress reporting that suits where the output goes.

On a terminal: a tqdm bar. Written to a file or a pipe (CI logs, ``> run.log``): a plain line every
``interval`` seconds (and at the end) instead of one carriage-return update per step, so a 2,000-step
run writes a few dozen lines, not thousands.
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

LOG_INTERVAL = 30.0  # seconds between plain lines


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """The subset of tqdm's interface the library uses, printing plain lines."""

    def __init__(self, total=None, desc: str | None = None, initial: int = 0, unit: str = "it", file=None,
                 interval: float = LOG_INTERVAL, **_) -> None:
        self.total, self.desc, self.n, self.unit = total, desc or "progress", initial, unit
        self.file = file or sys.stderr
        self.interval = interval
        self.start = time.perf_counter()
        self.start_n = initial
        self.last = -interval  # the first update prints
        self.postfix = ""

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f" {self.unit}")]
        parts.append(f"{elapsed:.0f} s")
        done = self.n - self.start_n
        if self.total and done > 0 and self.n < self.total:
            parts.append(f"ETA {elapsed / done * (self.total - self.n):.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter() - self.start
        if now - self.last >= self.interval:
            self.last = now
            print(self._line(), file=self.file, flush=True)

    def set_postfix(self, ordered_dict=None, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = " ".join(f"{k}={v}" for k, v in items.items())

    def write(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        if self.n != self.start_n or self.total == 0:
            print(self._line() + " (done)" if self.total and self.n >= self.total else self._line(),
                  file=self.file, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent(PlainProgress):
    def update(self, n: int = 1) -> None:
        self.n += n

    def write(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        pass


def progress(total=None, desc: str | None = None, disable: bool = False, file=None, **kwargs):
    """A progress reporter: tqdm on a terminal, plain lines otherwise, nothing when ``disable``
    (``write`` still prints)."""
    stream = file or sys.stderr
    if disable:
        return _Silent(total=total, desc=desc, file=stream, **kwargs)
    if _is_terminal(stream):
        return tqdm(total=total, desc=desc, file=stream, dynamic_ncols=True, **kwargs)
    return PlainProgress(total=total, desc=desc, file=stream, **kwargs)
