"""Capture times from EXIF strings, file names and file modification times (pure Python).

Priority (first usable wins): EXIF DateTimeOriginal, EXIF DateTime (each with its OffsetTime*
tag when the camera wrote one), a timestamp in the file name, the file's modification time
(flagged unreliable: copying files changes it). The source is always recorded, so a researcher
can tell a camera clock from a guess.

Times are the camera's local wall-clock time (naive datetimes); the UTC offset is kept apart
because most trap cameras never write one and nights are cut on local time anyway.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from trapgui.core.types import TimeSource

# Years outside this window are a camera with a reset clock or digits that only look like a date
# (a frame counter, a serial number): falling through to the next source is the safer choice.
MIN_YEAR = 1990
MAX_YEAR = 2100

_EXIF_RE = re.compile(
    r"^\s*(\d{4})[:\-/.](\d{2})[:\-/.](\d{2})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"(?:[.,](\d{1,6}))?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_OFFSET_RE = re.compile(r"^\s*(?:(Z)|([+-])(\d{2}):?(\d{2}))\s*$")

# Date and time, each with no separators or one separator used consistently (backreferences),
# so `2022-06-22_20-04-00`, `20220622-200400`, `20220622T200400` and `20220622200400` match.
# Wrapped in a lookahead so that every start position is tried (overlapping candidates): in
# `01-20231110214539` the first candidate fails validation and the next one is the real time.
_NAME_RE = re.compile(
    r"(?=(\d{4})([-_.]?)(\d{2})\2(\d{2})[-_T .]?(\d{2})([-_:.h]?)(\d{2})\6(\d{2}))"
)


@dataclass(frozen=True, slots=True)
class CaptureTime:
    """When an image was taken, where that came from, and what went wrong on the way."""

    local: dt.datetime | None  # camera local wall-clock time; None: no time at all
    offset_min: int | None  # UTC offset in minutes when the file states one
    source: TimeSource
    error: str | None = None  # why a better source was not used (shown to the user)

    @property
    def reliable(self) -> bool:
        return self.source not in (TimeSource.MTIME, TimeSource.NONE)

    def aware(self) -> dt.datetime | None:
        """The time with its UTC offset attached when known (for ISO 8601 output)."""
        if self.local is None or self.offset_min is None:
            return self.local
        return self.local.replace(tzinfo=dt.timezone(dt.timedelta(minutes=self.offset_min)))


def _valid_datetime(y: int, mo: int, d: int, h: int, mi: int, s: int) -> dt.datetime | None:
    if not MIN_YEAR <= y <= MAX_YEAR:
        return None
    try:
        return dt.datetime(y, mo, d, h, mi, s)
    except ValueError:  # month 13, 31 June, hour 24, ...
        return None


def parse_offset(text: object) -> int | None:
    """`+02:00` / `-0500` / `Z` → minutes east of UTC; anything else → None."""
    if not isinstance(text, str):
        return None
    m = _OFFSET_RE.match(text.strip("\x00"))
    if not m:
        return None
    if m.group(1):
        return 0
    minutes = int(m.group(3)) * 60 + int(m.group(4))
    if minutes > 14 * 60 or int(m.group(4)) >= 60:
        return None
    return -minutes if m.group(2) == "-" else minutes


def parse_exif_datetime(text: object) -> tuple[dt.datetime, int | None] | None:
    """An EXIF date string (`2022:06:22 20:04:00`, with tolerated variants) → (local, offset).

    Returns None for blanks, the all-zero placeholder some cameras write, and impossible dates.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str):
        return None
    m = _EXIF_RE.match(text.strip("\x00"))
    if not m:
        return None
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    when = _valid_datetime(y, mo, d, h, mi, s)
    if when is None:
        return None
    return when, parse_offset(m.group(8)) if m.group(8) else None


def parse_filename_time(stem: str) -> dt.datetime | None:
    """The first valid timestamp anywhere in a file name's stem, or None."""
    for m in _NAME_RE.finditer(stem):
        y, mo, d, h, mi, s = (int(m.group(i)) for i in (1, 3, 4, 5, 7, 8))
        when = _valid_datetime(y, mo, d, h, mi, s)
        if when is not None:
            return when
    return None


def mtime_to_local(mtime: float | None) -> dt.datetime | None:
    """A file modification time as this computer's local wall-clock time, if plausible."""
    if mtime is None or mtime != mtime or mtime <= 0:  # None, NaN, 0 / negative (unset)
        return None
    try:
        when = dt.datetime.fromtimestamp(mtime)
    except (OverflowError, OSError, ValueError):
        return None
    return when if MIN_YEAR <= when.year <= MAX_YEAR else None


def resolve_capture_time(
    *,
    exif_original: object = None,
    exif_datetime: object = None,
    offset_original: object = None,
    offset_datetime: object = None,
    stem: str = "",
    mtime: float | None = None,
) -> CaptureTime:
    """Pick the best available capture time (see the module docstring for the order).

    ``offset_original`` is EXIF OffsetTimeOriginal, ``offset_datetime`` is OffsetTime; an
    offset embedded in the date string itself is used when no tag gives one.
    """
    notes: list[str] = []
    parsed = parse_exif_datetime(exif_original)
    if parsed:
        when, inline = parsed
        offset = parse_offset(offset_original)
        if offset is None:
            offset = parse_offset(offset_datetime)
        return CaptureTime(when, inline if offset is None else offset, TimeSource.EXIF_ORIGINAL)
    if exif_original not in (None, "", b""):
        notes.append(f"EXIF DateTimeOriginal {str(exif_original).strip()!r} is not a valid date")
    parsed = parse_exif_datetime(exif_datetime)
    if parsed:
        when, inline = parsed
        offset = parse_offset(offset_datetime)
        return CaptureTime(when, inline if offset is None else offset, TimeSource.EXIF_DATETIME)
    if exif_datetime not in (None, "", b""):
        notes.append(f"EXIF DateTime {str(exif_datetime).strip()!r} is not a valid date")
    when = parse_filename_time(stem)
    if when is not None:
        return CaptureTime(when, None, TimeSource.FILENAME, "; ".join(notes) or None)
    local = mtime_to_local(mtime)
    if local is not None:
        notes.append("no capture time in EXIF or the file name: using the file's modification "
                     "time, which copying the files can change")
        return CaptureTime(local, None, TimeSource.MTIME, "; ".join(notes))
    notes.append("no capture time in EXIF, the file name or the file's modification time")
    return CaptureTime(None, None, TimeSource.NONE, "; ".join(notes))
