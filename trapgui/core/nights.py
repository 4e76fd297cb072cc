"""Which night an image belongs to.

A trap night starts in the evening and ends the next morning, so calendar dates split it in
two. A night is named by the date of its evening: every capture from ``cutoff_hour`` (noon by
default, camera local time) up to the same hour the next day belongs to it. An image taken at
00:04 on 22 June therefore belongs to the night of 21 June.
"""

from __future__ import annotations

import datetime as dt

DEFAULT_CUTOFF_HOUR = 12


def check_cutoff_hour(cutoff_hour: int) -> int:
    if isinstance(cutoff_hour, bool) or not isinstance(cutoff_hour, int) \
            or not 0 <= cutoff_hour <= 23:
        raise ValueError(f"night cut-off hour must be a whole hour from 0 to 23, not {cutoff_hour!r}")
    return cutoff_hour


def night_date(captured_at: dt.datetime, cutoff_hour: int = DEFAULT_CUTOFF_HOUR) -> dt.date:
    """The evening date of the night containing ``captured_at`` (local wall-clock time)."""
    check_cutoff_hour(cutoff_hour)
    return (captured_at - dt.timedelta(hours=cutoff_hour)).date()


def night_bounds(date: dt.date, cutoff_hour: int = DEFAULT_CUTOFF_HOUR
                 ) -> tuple[dt.datetime, dt.datetime]:
    """The half-open local-time window [start, end) that makes up the night of ``date``."""
    check_cutoff_hour(cutoff_hour)
    start = dt.datetime.combine(date, dt.time(cutoff_hour))
    return start, start + dt.timedelta(days=1)
