"""A changed night cut-off hour, applied to traps already in the catalogue: every image in
the night it now belongs to, every result and every decision of a person kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
REPO = Path(__file__).resolve().parent.parent


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


DAY_B = dt.date(2022, 7, 1)


def two_traps(root):
    return make_trap(root / "trapA", DAY_A), make_trap(root / "trapB", DAY_B)


def catalogue(capsys, db_path, traps, hour):
    """Scan at ``hour``, process (stored boxes), track: what `trapgui process` leaves."""
    for trap in traps:
        assert cli(capsys, db_path, "scan", str(trap), "--cutoff-hour", str(hour))[0] == 0
    db = open_database(db_path)
    pid = store_detections(db, {t.name: d for t, d in zip(traps, (DAY_A, DAY_B))})
    track_catalogue_nights(db, pid, nights_of(db))
    return db


def dates_by_image(db) -> dict[str, str]:
    from trapgui.db.tables import Deployment, Image
    with db.session() as s:
        return {f"{trap}/{rel}": date.isoformat() for trap, rel, date in s.execute(
            select(Deployment.name, Image.rel_path, Night.date)
            .join(Image, Image.deployment_id == Deployment.id)
            .join(Night, Night.id == Image.night_id))}


def test_two_traps_regrouped_to_18_match_a_fresh_catalogue_scanned_at_18(tmp_path, capsys):
    traps = two_traps(tmp_path / "folders")
    fresh = catalogue(capsys, tmp_path / "fresh.sqlite3", traps, 18)
    fresh_dates = dates_by_image(fresh)
    fresh.close()
    code, fresh_nights, _ = cli(capsys, tmp_path / "fresh.sqlite3", "nights")
    assert code == 0

    db = catalogue(capsys, tmp_path / "old.sqlite3", traps, 12)
    assert dates_by_image(db) != fresh_dates  # the hour matters for these frames
    db.close()
    for trap in traps:  # the CLI applies the new hour to each catalogued trap it scans
        code, out, err = cli(capsys, tmp_path / "old.sqlite3", "scan", str(trap),
                             "--cutoff-hour", "18")
        assert code == 0, err
        assert "Nights now start at 18:00: 1 trap regrouped, 2 nights → 3; results kept; " \
               "individuals counted again." in out
    db = open_database(tmp_path / "old.sqlite3")
    try:
        assert dates_by_image(db) == fresh_dates
    finally:
        db.close()
    code, nights, _ = cli(capsys, tmp_path / "old.sqlite3", "nights")
    assert code == 0
    assert nights == fresh_nights  # images, detections, individuals and MaxN per night


def test_a_reviewed_individual_across_the_new_boundary_is_split_keeping_its_label(tmp_path,
                                                                                   capsys):
    from trapgui.core.jobs import run_job
    from trapgui.pipeline.night_regroup import regroup_job

    traps = two_traps(tmp_path / "folders")
    db = catalogue(capsys, tmp_path / "c.sqlite3", traps, 12)
    try:
        a_dets = detections_of(db, "a", "trapA", DAY_A)  # 16:40-19:00: across 18:00
        [(occ_id, _, _, _, _)] = occurrence_holding(db, a_dets)
        review_store.relabel(db, [occ_id], "Noctua comes", "species", by="ana")
        summary = run_job(regroup_job(db, 18))
        assert summary.decisions_split == 1
        assert summary.describe() == (
            "Nights now start at 18:00: 2 traps regrouped, 4 nights → 6; results kept; "
            "individuals counted again; 1 reviewed individual split at the new boundary, "
            "each part keeping the decision (see the review history).")
        parts = occurrence_holding(db, a_dets)
        assert len(parts) == 2
        assert {(state, label, pinned) for _, _, state, label, pinned in parts} == {
            ("relabelled", "Noctua comes", True)}
        with db.session() as s:
            dates = {s.get(Night, night).date for _, night, _, _, _ in parts}
            log = s.execute(select(ReviewAction.kind, ReviewAction.summary, ReviewAction.night_id)
                            .order_by(ReviewAction.id)).all()
            members = {o: set(s.execute(select(Detection.id).where(
                Detection.occurrence_id == o)).scalars()) for o, *_ in parts}
        assert dates == {dt.date(2022, 6, 21), dt.date(2022, 6, 22)}
        assert set().union(*members.values()) == a_dets  # no detection lost or left out
        assert occ_id in members and len(members[occ_id]) >= len(a_dets) / 2  # the larger part
        assert [k for k, _, _ in log] == ["relabel", "regroup"]
        assert "split by the night cut-off change from 12:00 to 18:00" in log[1][1]
        # tracking the nights again keeps both parts and their decision
        track_catalogue_nights(db, store_pid(db), nights_of(db))
        assert sorted(occurrence_holding(db, a_dets)) == sorted(parts)
        # undo takes back the person's step on both parts, not the record of the split
        outcome = review_store.undo(db, night_id=log[0][2])
        assert outcome.kind == "relabel"
        assert {(state, label) for _, _, state, label, _ in occurrence_holding(db, a_dets)} == {
            (None, None)}
    finally:
        db.close()


def store_pid(db):
    from trapgui.db.tables import PipelineConfig
    with db.session() as s:
        return s.execute(select(PipelineConfig.id)).scalar_one()


def trap_state(db) -> dict:
    """Per trap: stored hour, image -> night date, detection -> the night of its occurrence
    (the same as its image's), and decisions."""
    from trapgui.db.tables import Deployment, Image
    with db.session() as s:
        hours = dict(s.execute(select(Deployment.name, Deployment.night_cutoff_hour)).all())
        rows = s.execute(select(Detection.id, Image.night_id, Occurrence.night_id)
                         .join(Image, Image.id == Detection.image_id)
                         .outerjoin(Occurrence, Occurrence.id == Detection.occurrence_id)).all()
        decided = s.execute(select(Occurrence.review_label).where(
            Occurrence.review_state.is_not(None))).scalars().all()
    assert all(occ_night in (None, image_night) for _, image_night, occ_night in rows)
    untracked = sum(occ_night is None for _, _, occ_night in rows)
    return {"hours": hours, "dates": dates_by_image(db), "untracked": untracked,
            "decided": sorted(decided)}


@pytest.mark.parametrize("where", ["between", "inside"])
def test_a_killed_regroup_is_finished_at_the_next_start(tmp_path, capsys, where):
    import os
    import subprocess
    import sys
    from trapgui.config.settings import Settings, save_settings

    traps = two_traps(tmp_path / "folders")
    fresh = catalogue(capsys, tmp_path / "fresh.sqlite3", traps, 18)
    expected = trap_state(fresh)
    fresh.close()
    db_path = tmp_path / "c.sqlite3"
    db = catalogue(capsys, db_path, traps, 12)
    [(occ_id, *_)] = occurrence_holding(db, detections_of(db, "b", "trapB", DAY_B))
    review_store.relabel(db, [occ_id], "Noctua comes", "species", by="ana")
    before = trap_state(db)
    db.close()

    proc = subprocess.run([sys.executable, "-m", "tests.regroup_kill", str(db_path), "18", where],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == -9, proc.stderr
    db = open_database(db_path)
    try:
        half = trap_state(db)
    finally:
        db.close()
    # the first trap is done, the second exactly as it was
    assert half["hours"] == {"trapA": 18, "trapB": 12}
    assert {k: v for k, v in half["dates"].items() if k.startswith("trapB/")} == {
        k: v for k, v in before["dates"].items() if k.startswith("trapB/")}
    assert {k: v for k, v in half["dates"].items() if k.startswith("trapA/")} == {
        k: v for k, v in expected["dates"].items() if k.startswith("trapA/")}
    assert half["decided"] == ["Noctua comes"]

    # the next start (here the CLI, with the setting at 18) finishes the job
    save_settings(Settings(night_cutoff_hour=18),
                  Path(os.environ["TRAPGUI_CONFIG_DIR"]) / "settings.json")
    code, _, err = cli(capsys, db_path, "nights")
    assert "`trapgui nights --regroup`" in err and "'trapB'" in err
    code, out, err = cli(capsys, db_path, "nights", "--regroup")
    assert code == 0
    assert "Nights now start at 18:00: 1 trap regrouped, 2 nights → 3; results kept; " \
           "individuals counted again." in err
    db = open_database(db_path)
    try:
        final = trap_state(db)
    finally:
        db.close()
    assert final["hours"] == {"trapA": 18, "trapB": 18}
    assert final["dates"] == expected["dates"] and final["untracked"] == 0
    assert final["decided"] == ["Noctua comes"]
