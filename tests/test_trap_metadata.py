"""Trap (deployment) metadata: validation with clear sentences, camera-clock times, storage in
the catalogue (and the migration of a catalogue made before it), the CLI and the service."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from trapgui.app import main
from trapgui.core import trap_metadata as tm
from trapgui.core.errors import UserInputError
from trapgui.core.local_time import CameraClock, iso, localize, parse_clock, parse_offset
from trapgui.db import open_database
from trapgui.db.migrations import LATEST_VERSION
from trapgui.db.tables import Deployment
from trapgui.db.trap_metadata import get_trap, list_traps, resolve_trap, update_trap
from trapgui.scan.indexer import scan_folder

DATA = Path(__file__).parent / "data"


# ---- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("key, text, message", [
    ("latitude", "95", "Latitude must be between -90 and 90 degrees, not 95."),
    ("latitude", "-90.5", "Latitude must be between -90 and 90 degrees, not -90.5."),
    ("latitude", "45°N", "Latitude must be a number in decimal degrees, not '45°N'."),
    ("latitude", "nan", "Latitude must be a finite number"),
    ("longitude", "181", "Longitude must be between -180 and 180 degrees, not 181."),
    ("coordinate_uncertainty_m", "0", "more than 0 metres"),
    ("coordinate_uncertainty_m", "ten", "a distance in metres"),
    ("coordinate_uncertainty_m", "30000000", "half the Earth's circumference"),
    ("clock", "Europe/Londn", "neither a UTC offset nor a time-zone name"),
    ("clock", "+15:00", "offsets run from -12:00 to +14:00"),
    ("clock", "+05:75", "minutes must be below 60"),
    ("deployment_start", "2022-13-01", "is not a real date"),
    ("deployment_start", "2022-06-21T19:00+02:00", "without a UTC offset"),
    ("deployment_end", "tomorrow", "a date and time such as 2022-06-21 19:30"),
    ("name", "", "The name cannot be empty"),
    ("notes", "x" * (tm.MAX_TEXT + 1), "too long"),
])
def test_bad_values_are_refused_with_a_sentence(key, text, message):
    with pytest.raises(tm.TrapMetadataError) as err:
        tm.apply_changes(tm.TrapValues(name="t"), {key: text}, trap="t")
    assert message in str(err.value)
    assert str(err.value).startswith("The metadata of trap 't' were not saved: ")
    assert all(p.endswith(".") for p in err.value.problems)


def test_all_problems_are_reported_at_once_and_between_fields():
    with pytest.raises(tm.TrapMetadataError) as err:
        tm.apply_changes(tm.TrapValues(name="t"), {"latitude": "95", "longitude": "500",
                                                   "clock": "Mars/Olympus"})
    assert len(err.value.problems) == 3
    for changes, message in [({"latitude": "45"}, "both latitude and longitude"),
                             ({"coordinate_uncertainty_m": "10"}, "needs coordinates"),
                             ({"deployment_start": "2022-06-02", "deployment_end": "2022-06-01"},
                              "end must be after its start")]:
        with pytest.raises(tm.TrapMetadataError, match=message):
            tm.apply_changes(tm.TrapValues(name="t"), changes)


def test_good_values_are_parsed():
    v = tm.apply_changes(tm.TrapValues(name="old"), {
        "name": "  Garden trap ", "latitude": "44,4759", "longitude": "-73.2121",
        "coordinate_uncertainty_m": "12.5 m", "clock": "America/New_York",
        "deployment_start": "2022-06-21 19:30", "deployment_end": "2022-09-30",
        "light_description": "LepiLED\nUV 365 nm", "site_name": ""})
    assert (v.name, v.latitude, v.longitude, v.coordinate_uncertainty_m) == (
        "Garden trap", 44.4759, -73.2121, 12.5)
    assert v.clock == CameraClock(time_zone="America/New_York")
    assert v.deployment_start == dt.datetime(2022, 6, 21, 19, 30)
    assert v.deployment_end == dt.datetime(2022, 9, 30, 23, 59, 59)  # a date: its end
    assert v.light_description == "LepiLED\nUV 365 nm" and v.site_name is None
    text = v.as_text()
    assert text["latitude"] == "44.4759" and text["clock"] == "America/New_York"
    assert text["deployment_start"] == "2022-06-21 19:30"
    again = tm.apply_changes(tm.TrapValues(name="x"), text)  # what is shown parses back
    assert again == v
    cleared = tm.apply_changes(v, {"clock": "", "latitude": "", "longitude": "",
                                   "coordinate_uncertainty_m": ""})
    assert not cleared.clock.known and cleared.latitude is None


def test_field_table_matches_the_values():
    assert tm.FIELD_KEYS == tuple(f.name for f in dataclasses.fields(tm.TrapValues))
    assert len({f.option for f in tm.FIELDS}) == len(tm.FIELDS)
    assert all(f.help.endswith((".", ")")) for f in tm.FIELDS)
    problems = tm.field_problems({"name": "a", "latitude": "95", "longitude": "1"})
    assert set(problems) == {"latitude"}
    assert tm.field_problems({"name": "a", "latitude": "5"}) == {
        "": "Give both latitude and longitude, or neither."}


# ---- camera clock --------------------------------------------------------------------------
def test_offsets_and_zone_names():
    assert [parse_offset(t) for t in ("+02:00", "-0500", "+5:30", "UTC+2", "Z", "UTC", "-00:00",
                                      "GMT-3")] == [120, -300, 330, 120, 0, 0, 0, -180]
    assert parse_offset("Europe/Paris") is None
    assert parse_clock("-04:00").describe() == "UTC-04:00"
    assert parse_clock("Pacific/Chatham").time_zone == "Pacific/Chatham"
    assert not parse_clock("  ").known
    with pytest.raises(ValueError):
        CameraClock(offset_min=60, time_zone="Europe/Paris")


def test_local_times_become_exact():
    summer, winter = dt.datetime(2022, 6, 22, 0, 4, 59), dt.datetime(2022, 11, 20, 21, 0)
    ny = CameraClock(time_zone="America/New_York")
    assert iso(localize(summer, None, ny)) == "2022-06-22T00:04:59-04:00"
    assert iso(localize(winter, None, ny)) == "2022-11-20T21:00:00-05:00"  # daylight saving
    fixed = CameraClock(offset_min=-300)
    assert iso(localize(summer, None, fixed)) == "2022-06-22T00:04:59-05:00"
    # the trap's clock wins over the file's offset (cameras write wrong defaults); without a
    # trap clock the file's offset is used, without either there is no exact time
    assert iso(localize(summer, 0, fixed)).endswith("-05:00")
    assert iso(localize(summer, 120, CameraClock())).endswith("+02:00")
    assert localize(summer, None, CameraClock()) is None
    # the hour repeated when daylight saving ends: its first occurrence; the skipped hour: the
    # offset in force before the change
    assert iso(localize(dt.datetime(2022, 11, 6, 1, 30), None, ny)) == \
        "2022-11-06T01:30:00-04:00"
    assert iso(localize(dt.datetime(2022, 3, 13, 2, 30), None, ny)) == \
        "2022-03-13T02:30:00-05:00"


# ---- the catalogue ---------------------------------------------------------------------------
@pytest.fixture
def two_traps(db, trap_copy):
    ids = {name: scan_folder(db, trap_copy / name).deployment_id for name in ("vermont", "panama")}
    return db, ids, trap_copy


def test_stored_and_read_back(two_traps):
    db, ids, root = two_traps
    fresh = get_trap(db, ids["vermont"])
    assert fresh.uid and len(fresh.uid) == 36 and not fresh.has_coordinates
    assert fresh.start == fresh.first_image == dt.datetime(2022, 6, 22, 0, 4, 59)
    assert fresh.end == dt.datetime(2022, 6, 23, 4, 30) and fresh.images == 3
    saved = update_trap(db, ids["vermont"], {"latitude": "44.4759", "longitude": "-73.2121",
                                             "clock": "-04:00", "deployment_start":
                                             "2022-06-21 18:00", "notes": "sheet replaced"})
    assert saved.has_coordinates and saved.clock.offset_min == -240
    assert saved.start == dt.datetime(2022, 6, 21, 18) and saved.end == fresh.end
    assert saved.uid == fresh.uid
    before = get_trap(db, ids["vermont"])
    with pytest.raises(tm.TrapMetadataError, match="not 95"):
        update_trap(db, ids["vermont"], {"latitude": "95", "notes": "lost?"})
    assert get_trap(db, ids["vermont"]) == before  # nothing saved
    switched = update_trap(db, ids["vermont"], {"clock": "America/New_York"})
    assert switched.clock == CameraClock(time_zone="America/New_York")  # not both
    uids = {t.uid for t in list_traps(db)}
    assert len(uids) == 2
    # a rescan keeps everything the user entered
    scan_folder(db, root / "vermont")
    assert get_trap(db, ids["vermont"]).values == switched.values


def test_resolve_by_id_name_or_folder(two_traps):
    db, ids, root = two_traps
    assert resolve_trap(db, str(ids["panama"])).name == "panama"
    assert resolve_trap(db, "Vermont").id == ids["vermont"]
    assert resolve_trap(db, str(root / "panama")).id == ids["panama"]
    with pytest.raises(UserInputError, match="No trap in the catalogue is called 'nope'"):
        resolve_trap(db, "nope")
    update_trap(db, ids["panama"], {"name": "vermont"})
    with pytest.raises(UserInputError, match="Several traps are called 'vermont'"):
        resolve_trap(db, "vermont")


def test_a_catalogue_made_before_trap_metadata_migrates(tmp_path):
    """Schema 2 (the base of this work: occurrences, no trap metadata) gains the columns, each
    existing trap gets its own identifier, and nothing is lost."""
    old = tmp_path / "v2.sqlite3"
    con = sqlite3.connect(old)
    con.executescript((DATA / "catalogue-v2.sql").read_text())
    for i, name in ((1, "a"), (2, "b")):
        con.execute("INSERT INTO deployments (id, path, name, created_at, kind, "
                    "night_cutoff_hour) VALUES (?, ?, ?, '2026-11-01 00:00:00', 'local', 12)",
                    (i, f"/traps/{name}", name))
    con.commit()
    con.close()
    db = open_database(old)
    try:
        assert db.schema_version() == LATEST_VERSION
        with db.session() as s:
            rows = s.execute(select(Deployment.name, Deployment.uid, Deployment.latitude)
                             .order_by(Deployment.id)).all()
        assert [r.name for r in rows] == ["a", "b"] and all(r.latitude is None for r in rows)
        assert len({r.uid for r in rows}) == 2 and all(len(r.uid) == 36 for r in rows)
        assert update_trap(db, 1, {"latitude": "1", "longitude": "2"}).has_coordinates
    finally:
        db.close()
    db = open_database(old)  # opens again (the migration ran once)
    db.close()


# ---- CLI --------------------------------------------------------------------------------------
def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_show_set(capsys, trap_copy):
    assert run(capsys, "scan", str(trap_copy / "vermont"))[0] == 0
    code, out, _ = run(capsys, "trap", "list")
    assert code == 0 and "vermont" in out and "not set" in out
    code, _, err = run(capsys, "trap", "set", "vermont", "--latitude", "95")
    assert code == 2
    assert "Latitude must be between -90 and 90 degrees, not 95." in err
    assert "Traceback" not in err
    code, out, err = run(capsys, "trap", "set", "vermont", "--latitude", "44.4759",
                         "--longitude", "-73.2121", "--uncertainty", "10", "--timezone",
                         "America/New_York", "--light", "LepiLED 15 W", "--site",
                         "Burlington")
    assert code == 0, err
    assert "Saved 6 fields of trap 'vermont'." in out and "America/New_York" in out
    code, out, _ = run(capsys, "trap", "set", "vermont", "--timezone=-04:00")
    assert code == 0 and "UTC-04:00" in out
    code, out, _ = run(capsys, "trap", "show", str(trap_copy / "vermont"))
    assert code == 0 and "44.4759" in out and "(first image)" in out and "Burlington" in out
    assert "exports need" not in out
    code, _, err = run(capsys, "trap", "set", "vermont")
    assert code == 2 and "Nothing to set" in err
    code, _, err = run(capsys, "trap", "show", "nope")
    assert code == 2 and "No trap in the catalogue is called 'nope'" in err


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["trap", "set", "--help"])
    out = capsys.readouterr().out
    for f in tm.FIELDS:
        assert f.option in out
    assert "decimal degrees" in out and "IANA" in out and "--timezone=-04:00" in out
    for action in ("list", "show"):
        with pytest.raises(SystemExit):
            main(["trap", action, "--help"])
        assert "trap" in capsys.readouterr().out


# ---- the service (what the window calls) -------------------------------------------------------
def test_trap_service(two_traps):
    from trapgui.services.trap_service import TrapService

    db, ids, _ = two_traps
    service = TrapService(db)
    info = service.get(ids["vermont"])
    assert info.missing_for_publishing == ["coordinates", "camera clock"]
    assert "Not set yet: coordinates, camera clock" in info.tooltip
    assert service.validate(ids["vermont"], {"latitude": "95", "longitude": "0"}) == [
        "Latitude must be between -90 and 90 degrees, not 95."]
    problems, preview = service.check_form({**info.values, "clock": "America/New_York"},
                                           info.first_image)
    assert problems == {} and preview.endswith("is 2022-06-22T00:04:59-04:00.")
    problems, _ = service.check_form({**info.values, "clock": "Nowhere/Special"})
    assert "neither a UTC offset" in problems["clock"]
    updated = service.update(ids["vermont"], {"latitude": "44.5", "longitude": "-73.2",
                                              "coordinate_uncertainty_m": "8",
                                              "clock": "America/New_York"})
    assert updated.missing_for_publishing == []
    tips = service.tooltips()
    assert "Position: 44.5, -73.2 (± 8 m)" in tips[ids["vermont"]]
    assert "Camera clock: America/New_York" in tips[ids["vermont"]]
    assert "America/New_York" in service.time_zone_names()
