"""A job's events on the terminal: one tqdm bar for its progress, a line for each warning and
failure. Off a terminal (a headless machine's log) a plain progress line every few seconds
instead of a redrawn bar, or nothing for jobs that only matter interactively."""

from __future__ import annotations

import sys
import threading
import time

from tqdm import tqdm

from trapgui.core.jobs import ItemFailed, LogLine, Progress, RunProgress
from trapgui.core.safe_text import printable


class TerminalProgress:
    """An ``emit`` for ``core.jobs`` jobs (thread-safe). ``label`` prefixes the bar;
    ``plain_every_s`` None keeps it silent off a terminal."""

    def __init__(self, label: str = "", *, unit: str = "images", stream=None,
                 quiet: bool = False, plain_every_s: float | None = 10.0,
                 unit_scale: bool = False):
        # resolved at call time: sys.stderr may have been replaced since import
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() and not quiet
        self.quiet = quiet
        self.label = label
        self.unit = unit
        self.unit_scale = unit_scale
        self.plain_every_s = plain_every_s
        self._bar: tqdm | None = None
        self._last_plain = 0.0
        self._last_text = ""
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        if isinstance(event, Progress):
            self.show(event)
        elif isinstance(event, ItemFailed):
            self.message(f"failed: {printable(event.name)}: {printable(event.reason)}")
        elif isinstance(event, LogLine) and event.level != "info":
            self.message(f"{event.level}: {printable(event.message)}")

    def show(self, p: Progress) -> None:
        if self.quiet:
            return
        with self._lock:
            label = p.message or self.label
            if self.live:
                bar = self._ensure_bar(p.total)
                bar.set_description_str(label, refresh=False)
                bar.set_postfix_str(_postfix(p), refresh=False)
                bar.n = p.done + p.failed if isinstance(p, RunProgress) else p.done
                bar.refresh()
                return
            if self.plain_every_s is None:
                return
            done = p.done + p.failed if isinstance(p, RunProgress) else p.done
            finished = p.total is not None and done >= p.total
            started = self._started()  # first: a first event must not see a negative time
            text = tqdm.format_meter(done, p.total, time.monotonic() - started,
                                     prefix=label, unit=self.unit, unit_scale=self.unit_scale,
                                     postfix=_postfix(p) or None, ncols=100)
            if text != self._last_text and (finished or time.monotonic() - self._last_plain
                                            >= self.plain_every_s):
                self._last_plain, self._last_text = time.monotonic(), text
                print(text, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)

    def close(self, clear: bool = False) -> None:
        with self._lock:
            if self._bar is not None:
                if clear:
                    self._bar.leave = False
                self._bar.close()
                self._bar = None

    def _ensure_bar(self, total: int | None) -> tqdm:
        if self._bar is None:
            self._bar = tqdm(total=total, file=self.stream, unit=self.unit,
                             unit_scale=self.unit_scale, dynamic_ncols=True, leave=True,
                             mininterval=0.1, smoothing=0.1)
        elif total != self._bar.total:
            self._bar.total = total
        return self._bar

    def _started(self) -> float:
        if not hasattr(self, "_t0"):
            self._t0 = time.monotonic()
        return self._t0


def _postfix(p: Progress) -> str:
    parts = []
    if isinstance(p, RunProgress):
        parts.append(f"{p.detections} detections")
        if p.posted is not None:
            parts.append(f"{p.posted} posted")
        if p.state not in ("working", "paused"):
            parts.append(p.state)
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.paused:
        parts.append("PAUSED")
    return ", ".join(parts)
