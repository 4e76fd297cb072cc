"""Renaming a trap and removing it with everything the catalogue holds of it (its image files
stay on disk), in the database, the service and the CLI (real SQLite file)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.core.errors import UserInputError
from trapgui.db.trap_metadata import list_traps, remove_trap, rename_trap, trap_contents
from trapgui.pipeline.tracking_job import track_catalogue_nights

N1, N2 = dt.date(2022, 6, 21), dt.date(2022, 6, 22)


@pytest.fixture
def two_traps(db):
    a = make_catalogue(db, "north")
    add_frames(a, N1, 4, {"moth-a": 0, "moth-b": 1})
    add_frames(a, N2, 3, {"moth-c": 2})
    b = make_catalogue(db, "south")
    add_frames(b, N1, 2, {"moth-d": 3})
    track_catalogue_nights(db, a.pipeline_id, list(a.nights.values()) + list(b.nights.values()))
    return a, b


def _rows(db, table: str) -> int:
    with sqlite3.connect(db.path) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_contents_say_what_a_removal_takes(db, two_traps):
    a, _b = two_traps
    c = trap_contents(db, a.deployment_id)
    assert (c.images, c.nights, c.processed) == (7, 2, 7)
    assert c.detections == 4 * 3 + 3 * 2  # the screw is detected in every frame
    assert c.occurrences == 3 + 2
    assert c.describe() == "7 images in 2 nights, 7 processed, 18 detections, 5 individuals"


def test_remove_takes_the_trap_and_only_its_results(db, two_traps):
    a, b = two_traps
    before = {t: _rows(db, t) for t in ("images", "detections", "occurrences", "jobs",
                                         "classifications", "nights")}
    kept = trap_contents(db, b.deployment_id)
    removed = remove_trap(db, a.deployment_id)
    assert removed.images == 7
    assert [t.name for t in list_traps(db)] == ["south"]
    assert trap_contents(db, b.deployment_id) == kept
    assert _rows(db, "images") == before["images"] - 7
    assert _rows(db, "detections") == before["detections"] - removed.detections
    assert _rows(db, "occurrences") == before["occurrences"] - removed.occurrences
    assert _rows(db, "jobs") == before["jobs"] - 7
    assert _rows(db, "nights") == before["nights"] - 2
    with sqlite3.connect(db.path) as con:  # nothing points at what is gone
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(UserInputError, match="no trap with id"):
        remove_trap(db, a.deployment_id)


def test_rename_is_validated(db, two_traps):
    a, _b = two_traps
    assert rename_trap(db, a.deployment_id, "  Lake shore  ").name == "Lake shore"
    with pytest.raises(UserInputError, match="empty"):
        rename_trap(db, a.deployment_id, "   ")


def cli(capsys, *argv):
    from trapgui.cli.main import run_cli

    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_rename_and_remove(db, two_traps, capsys):
    path = str(db.path)
    code, out, err = cli(capsys, "--db", path, "trap", "rename", "north", "Lake shore")
    assert code == 0, err
    assert "Renamed trap 'north' to 'Lake shore'." in out
    # not a terminal and no --yes: refused with a sentence, nothing removed
    code, out, err = cli(capsys, "--db", path, "trap", "remove", "Lake shore")
    assert code != 0
    assert "takes 7 images in 2 nights, 7 processed, 18 detections, 5 individuals" in err
    assert "nothing was removed" in err and "--yes" in err
    assert len(list_traps(db)) == 2
    code, out, err = cli(capsys, "--db", path, "trap", "remove", "Lake shore", "--yes")
    assert code == 0, err
    assert "Removed trap 'Lake shore': 7 images" in out and "stay on disk" in out
    assert [t.name for t in list_traps(db)] == ["south"]
    code, _out, err = cli(capsys, "--db", path, "trap", "remove", "nope", "--yes")
    assert code != 0 and "No trap in the catalogue is called 'nope'" in err
