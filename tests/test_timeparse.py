"""Capture-time parsing: EXIF strings, offsets, file names, mtime fallback and priority."""

from __future__ import annotations

import datetime as dt

import pytest

from trapgui.core.timeparse import (
    mtime_to_local,
    parse_exif_datetime,
    parse_filename_time,
    parse_offset,
    resolve_capture_time,
)
from trapgui.core.types import TimeSource

D = dt.datetime


@pytest.mark.parametrize("stem, expected", [
    ("20220622000459-108-snapshot", D(2022, 6, 22, 0, 4, 59)),  # YYYYMMDDHHMMSS-NNN (vermont)
    ("01-20231110214539-snapshot", D(2023, 11, 10, 21, 45, 39)),  # NN-YYYYMMDDHHMMSS (panama)
    ("20220728232239-00-69", D(2022, 7, 28, 23, 22, 39)),  # sequential
    ("2022-06-22_20-04-00", D(2022, 6, 22, 20, 4, 0)),
    ("20220622-200400", D(2022, 6, 22, 20, 4, 0)),
    ("trap3_20220622T200400_cam", D(2022, 6, 22, 20, 4, 0)),
    ("2022.06.22 20.04.00", D(2022, 6, 22, 20, 4, 0)),
    ("img 2022-06-22 20:04:00", D(2022, 6, 22, 20, 4, 0)),
    # digits glued to the timestamp: the first valid window wins, not the first window
    ("0120231110214539", D(2023, 11, 10, 21, 45, 39)),
    ("20231110214539123", D(2023, 11, 10, 21, 45, 39)),
])
def test_filename_timestamps(stem, expected):
    assert parse_filename_time(stem) == expected


@pytest.mark.parametrize("stem", [
    "DSC_0390",  # the DSLR images: no time in the name
    "20221322000000",  # month 13
    "20220631120000",  # 31 June
    "20220622250000",  # hour 25
    "18500101120000",  # implausible year (reset clock / counter)
    "2022-06_22-20-04-00",  # inconsistent date separators
    "12345678901234",
    "",
])
def test_filename_without_valid_timestamp(stem):
    assert parse_filename_time(stem) is None


@pytest.mark.parametrize("text, expected", [
    ("2022:06:22 20:04:00", (D(2022, 6, 22, 20, 4), None)),
    ("2022:06:22 20:04:00\x00", (D(2022, 6, 22, 20, 4), None)),
    (b"2022:06:22 20:04:00", (D(2022, 6, 22, 20, 4), None)),
    ("2022-06-22T20:04:00+02:00", (D(2022, 6, 22, 20, 4), 120)),
    ("2022:06:22 20:04", (D(2022, 6, 22, 20, 4), None)),
    ("2022:06:22 20:04:00.123", (D(2022, 6, 22, 20, 4), None)),
])
def test_exif_datetime_strings(text, expected):
    assert parse_exif_datetime(text) == expected


@pytest.mark.parametrize("text", ["0000:00:00 00:00:00", "    :  :     :  :  ", "", None, 42,
                                  "2022:02:30 10:00:00", "yesterday"])
def test_exif_placeholders_are_rejected(text):
    assert parse_exif_datetime(text) is None


@pytest.mark.parametrize("text, minutes", [
    ("+02:00", 120), ("-05:00", -300), ("+0530", 330), ("Z", 0), ("+00:00", 0),
    ("  :  ", None), ("+25:00", None), ("+01:75", None), (None, None), ("", None),
])
def test_offsets(text, minutes):
    assert parse_offset(text) == minutes


def test_priority_datetime_original_first():
    t = resolve_capture_time(exif_original="2022:06:22 20:04:00", exif_datetime="2022:06:23 09:00:00",
                             stem="20200101000000", mtime=1_600_000_000)
    assert (t.local, t.source, t.error) == (D(2022, 6, 22, 20, 4), TimeSource.EXIF_ORIGINAL, None)
    assert t.reliable


def test_original_offset_prefers_offset_time_original():
    t = resolve_capture_time(exif_original="2022:06:22 20:04:00", offset_original="-04:00",
                             offset_datetime="+01:00")
    assert t.offset_min == -240
    assert t.aware().isoformat() == "2022-06-22T20:04:00-04:00"
    t = resolve_capture_time(exif_original="2022:06:22 20:04:00", offset_datetime="+01:00")
    assert t.offset_min == 60


def test_exif_datetime_with_offset_when_original_missing():
    # the DSLR case described in shared/README: time only in EXIF DateTime
    t = resolve_capture_time(exif_datetime="2022:07:19 14:28:16", offset_datetime="+02:00",
                             stem="DSC_0390")
    assert (t.local, t.offset_min, t.source) == (D(2022, 7, 19, 14, 28, 16), 120,
                                                 TimeSource.EXIF_DATETIME)


def test_broken_exif_falls_back_to_filename_and_says_why():
    t = resolve_capture_time(exif_original="0000:00:00 00:00:00", stem="20220622200400-01-snapshot")
    assert (t.local, t.source) == (D(2022, 6, 22, 20, 4), TimeSource.FILENAME)
    assert "DateTimeOriginal" in t.error


def test_mtime_fallback_is_flagged_unreliable():
    mtime = dt.datetime(2022, 6, 22, 21, 0).timestamp()
    t = resolve_capture_time(stem="DSC_0390", mtime=mtime)
    assert t.source is TimeSource.MTIME and not t.reliable
    assert t.local == D(2022, 6, 22, 21, 0)
    assert "modification time" in t.error


@pytest.mark.parametrize("mtime", [None, 0, -5, float("nan"), 1e20])
def test_no_time_at_all_is_undated_with_reason(mtime):
    t = resolve_capture_time(stem="IMG_0001", mtime=mtime)
    assert t.local is None and t.source is TimeSource.NONE
    assert "no capture time" in t.error
    assert mtime_to_local(mtime) is None
