"""Night dates: the night is named by its evening; the cut-off hour is a setting."""

from __future__ import annotations

import datetime as dt

import pytest

from trapgui.core.nights import night_bounds, night_date

D = dt.datetime


@pytest.mark.parametrize("when, cutoff, evening", [
    (D(2022, 6, 22, 0, 4, 59), 12, dt.date(2022, 6, 21)),  # vermont's 00:04 image
    (D(2022, 6, 22, 20, 4), 12, dt.date(2022, 6, 22)),
    (D(2022, 6, 23, 4, 30), 12, dt.date(2022, 6, 22)),
    (D(2022, 6, 22, 11, 59, 59), 12, dt.date(2022, 6, 21)),  # last second of the night
    (D(2022, 6, 22, 12, 0, 0), 12, dt.date(2022, 6, 22)),  # first second of the next
    (D(2022, 1, 1, 3, 0), 12, dt.date(2021, 12, 31)),  # across the new year
    (D(2024, 3, 1, 1, 0), 12, dt.date(2024, 2, 29)),  # leap day
    (D(2022, 6, 22, 7, 0), 8, dt.date(2022, 6, 21)),
    (D(2022, 6, 22, 9, 0), 8, dt.date(2022, 6, 22)),
    (D(2022, 6, 22, 0, 4), 0, dt.date(2022, 6, 22)),  # cut-off 0 = calendar days
])
def test_night_date(when, cutoff, evening):
    assert night_date(when, cutoff) == evening


def test_bounds_contain_exactly_their_night():
    start, end = night_bounds(dt.date(2022, 6, 21), 12)
    assert (start, end) == (D(2022, 6, 21, 12), D(2022, 6, 22, 12))
    assert night_date(start, 12) == night_date(end - dt.timedelta(microseconds=1), 12)
    assert night_date(end, 12) == dt.date(2022, 6, 22)


@pytest.mark.parametrize("bad", [-1, 24, 12.5, "12", True])
def test_bad_cutoff_hour(bad):
    with pytest.raises(ValueError, match="cut-off hour"):
        night_date(D(2022, 6, 22), bad)
