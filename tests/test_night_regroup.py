"""A changed night cut-off hour, applied to traps already in the catalogue: every image in
the night it now belongs to, every result and every decision of a person kept."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from trapgui.app import main
from trapgui.db import open_database
from trapgui.db import review_store
from trapgui.db.occurrence_store import nights_of
from trapgui.db.tables import Detection, Night, Occurrence, ReviewAction
from trapgui.pipeline.tracking_job import track_catalogue_nights
from tests.regroup_helpers import detections_of, make_trap, store_detections

DAY_A = dt.date(2022, 6, 22)


def cli(capsys, db_path, *argv):
    code = main(["--db", str(db_path), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def occurrence_holding(db, detection_ids) -> list[tuple]:
    with db.session() as s:
        return s.execute(select(Occurrence.id, Occurrence.night_id, Occurrence.review_state,
                                Occurrence.review_label, Occurrence.pinned).where(
            Occurrence.id.in_(select(Detection.occurrence_id).where(
                Detection.id.in_(list(detection_ids)))))).all()


def test_rescan_with_another_hour_keeps_a_persons_decision(tmp_path, capsys):
    """The data loss: night 2022-06-24 (13:00-14:40 frames at a noon cut-off) is emptied by a
    cut-off at 18:00; its reviewed individual must move to 2022-06-23 with its decision."""
    trap = make_trap(tmp_path / "trapA", DAY_A)
    db_path = tmp_path / "catalogue.sqlite3"
    assert cli(capsys, db_path, "scan", str(trap), "--cutoff-hour", "12")[0] == 0
    db = open_database(db_path)
    try:
        pid = store_detections(db, {"trapA": DAY_A})
        track_catalogue_nights(db, pid, nights_of(db))
        d_dets = detections_of(db, "d", "trapA", DAY_A)
        [(occ_id, night_id, _, _, _)] = occurrence_holding(db, d_dets)
        with db.session() as s:
            assert s.get(Night, night_id).date == dt.date(2022, 6, 24)
        review_store.relabel(db, [occ_id], "Xestia triangulum", "species", by="ana")
    finally:
        db.close()

    code, out, err = cli(capsys, db_path, "scan", str(trap), "--cutoff-hour", "18")
    assert code == 0, err
    db = open_database(db_path)
    try:
        [(occ_after, night_after, state, label, pinned)] = occurrence_holding(db, d_dets)
        assert (occ_after, state, label, pinned) == (occ_id, "relabelled", "Xestia triangulum", True)
        with db.session() as s:
            assert s.get(Night, night_after).date == dt.date(2022, 6, 23)
            assert s.execute(select(Night.id).where(Night.date == dt.date(2022, 6, 24))).first() is None
            [action_night] = s.execute(select(ReviewAction.night_id).where(
                ReviewAction.kind == "relabel")).scalars().all()
        assert action_night == night_after  # the undo history follows the individual
    finally:
        db.close()
