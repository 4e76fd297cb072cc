"""Camera-local photo times to ISO 8601 with a UTC offset.

Trap cameras write their clock's wall-clock time and, mostly, no offset. What that time means
is a property of the trap: its camera clock ran either on a **fixed UTC offset** (``+02:00``:
the clock never changed) or on an **IANA time zone** (``America/New_York``: the clock followed
that zone's daylight-saving changes). :class:`CameraClock` holds one of the two.

Which offset a photo gets (first that applies): the trap's clock when the user set it (it
describes the camera, and cameras often write a wrong default ``OffsetTime``), else the offset
the file itself states (EXIF ``OffsetTime*``), else none: the time stays local and exports that
need an offset say so. A wall-clock time that occurs twice (the hour repeated when daylight
saving ends) takes the first of the two (``fold=0``); one that never occurs (the hour skipped
when it starts) gets the offset in force before the change.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

MAX_OFFSET_MIN = 14 * 60  # UTC+14 (Kiribati) .. UTC-12 are the offsets in use
MIN_OFFSET_MIN = -12 * 60

_OFFSET_RE = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CameraClock:
    """A trap's camera clock: a fixed offset, a time-zone name, or unknown (both None)."""

    offset_min: int | None = None
    time_zone: str | None = None

    def __post_init__(self):
        if self.offset_min is not None and self.time_zone is not None:
            raise ValueError("a camera clock has a fixed UTC offset or a time zone, not both")

    @property
    def known(self) -> bool:
        return self.offset_min is not None or self.time_zone is not None

    def describe(self) -> str:
        """What a person reads: ``UTC+02:00``, ``America/New_York``, or ``not set``."""
        if self.time_zone:
            return self.time_zone
        if self.offset_min is not None:
            return "UTC" + format_offset(self.offset_min)
        return "not set"

    def text(self) -> str:
        """The value as typed back into the CLI or the dialog (``+02:00``, a name, or "")."""
        if self.time_zone:
            return self.time_zone
        return format_offset(self.offset_min) if self.offset_min is not None else ""

    def zone(self) -> dt.tzinfo | None:
        if self.time_zone:
            return zoneinfo.ZoneInfo(self.time_zone)
        if self.offset_min is not None:
            return dt.timezone(dt.timedelta(minutes=self.offset_min))
        return None


def parse_offset(text: str) -> int | None:
    """``+02:00``, ``-0500``, ``+5:30``, ``UTC+2``, ``Z``, ``UTC`` -> minutes east of UTC;
    None when ``text`` is not an offset (it may be a time-zone name)."""
    t = text.strip()
    if t.upper() in ("Z", "UTC", "GMT", "+00:00", "-00:00", "0"):
        return 0
    m = _OFFSET_RE.match(t)
    if not m:
        return None
    sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
    if minutes >= 60:
        raise ValueError(f"{text!r} is not a UTC offset: minutes must be below 60")
    value = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
    if not MIN_OFFSET_MIN <= value <= MAX_OFFSET_MIN:
        raise ValueError(f"{text!r} is not a UTC offset in use: offsets run from -12:00 to +14:00")
    return value


def format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"


def parse_clock(text: str | None) -> CameraClock:
    """A UTC offset or an IANA time-zone name as the user typed it; "" or None = not set.
    Raises ValueError with a sentence when it is neither."""
    if text is None or not text.strip():
        return CameraClock()
    t = text.strip()
    offset = parse_offset(t)
    if offset is not None:
        return CameraClock(offset_min=offset)
    try:
        zoneinfo.ZoneInfo(t)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{t!r} is neither a UTC offset nor a time-zone name: give an offset such as "
            "-04:00 or +05:30 (the camera clock never changed), or an IANA time-zone name such "
            "as America/New_York or Europe/London (the clock followed daylight saving)") from None
    return CameraClock(time_zone=t)


def localize(local: dt.datetime, file_offset_min: int | None,
             clock: CameraClock) -> dt.datetime | None:
    """The camera-local ``local`` as an aware datetime, or None when no offset is known."""
    if local.tzinfo is not None:
        return local
    zone = clock.zone()
    if zone is None and file_offset_min is not None:
        zone = dt.timezone(dt.timedelta(minutes=file_offset_min))
    if zone is None:
        return None
    # fold=0: a repeated wall-clock time is its first occurrence, and a skipped one is read on
    # the offset in force before the change (PEP 495), what a camera clock not yet changed shows
    return local.replace(tzinfo=zone, fold=0)


def iso(aware: dt.datetime | None) -> str:
    """``2022-06-22T00:04:59-04:00`` (seconds; the offset as ``±hh:mm``); "" for None."""
    if aware is None:
        return ""
    return aware.isoformat(timespec="seconds")


def iso_utc(when: dt.datetime | None) -> str:
    """A naive UTC time (how the catalogue stores run times) as ``2022-06-22T04:04:59Z``."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when.isoformat(timespec="seconds") + "Z"
