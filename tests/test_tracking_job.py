"""Tracking as a job over the catalogue: one transaction per night, pinned occurrences and a
person's fixture decisions kept, fixtures across nights, crash safety, the migration, the
settings group and the CLI (real SQLite files, real subprocesses)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.config.settings import Settings, load_settings, save_settings
from trapgui.core.embedding_kind import embedding_kind
from trapgui.core.errors import UserInputError
from trapgui.core.tracking_params import TrackingParams
from trapgui.db import open_database, occurrence_store
from trapgui.db.catalogue_queries import nights_table
from trapgui.db.counts import count_individuals, count_individuals_per_night
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.migrations import LATEST_VERSION
from trapgui.db.tables import Detection, Occurrence
from trapgui.pipeline.tracking_job import (nights_to_track, set_fixture_decision,
                                           track_catalogue_nights, tracking_job)

REPO = Path(__file__).resolve().parent.parent
N1, N2 = dt.date(2022, 6, 21), dt.date(2022, 6, 22)


def _occurrences(db, night_id):
    with db.session() as s:
        return {r.id: r for r in s.execute(select(Occurrence).where(Occurrence.night_id == night_id))
                .scalars()}


def _members(db, occurrence_id):
    with db.session() as s:
        return set(s.execute(select(Detection.id).where(Detection.occurrence_id == occurrence_id))
                   .scalars())


def _snapshot(db):
    with db.session() as s:
        occ = sorted(tuple(r) for r in s.execute(select(
            Occurrence.id, Occurrence.night_id, Occurrence.n_detections, Occurrence.fixture,
            Occurrence.best_detection_id, Occurrence.label)))
        det = sorted(tuple(r) for r in s.execute(select(Detection.id, Detection.occurrence_id)))
    return occ, det


@pytest.fixture
def two_nights(db):
    cat = make_catalogue(db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1, "moth-c": 2})
    add_frames(cat, N2, 6, {"moth-d": 3, "moth-e": 4})
    return cat


def test_a_night_becomes_individuals_and_fixtures_need_two_nights(two_nights):
    cat, db = two_nights, two_nights.db
    # only the first night tracked: the screw is still in every image, but one night is no proof
    first = track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    assert [n.occurrences for n in first.nights] == [4] and first.fixtures == 0
    summary = track_catalogue_nights(db, cat.pipeline_id, nights_to_track(db, cat.pipeline_id))
    assert [n.date for n in summary.nights] == [N2.isoformat()]
    assert summary.nights[0].other_flags_changed == 1  # the first night's screw, flagged now
    for date, moths in ((N1, {"moth-a", "moth-b", "moth-c"}), (N2, {"moth-d", "moth-e"})):
        occs = _occurrences(db, cat.nights[date])
        by_identity = {}
        for occ_id, occ in occs.items():
            names = {cat.truth[d] for d in _members(db, occ_id)}
            assert len(names) == 1  # every link right
            by_identity[names.pop()] = occ
        assert set(by_identity) == moths | {"fixture"}
        assert by_identity["fixture"].fixture and "other night" in by_identity["fixture"].fixture_reason
        assert not any(by_identity[m].fixture for m in moths)
        assert all(by_identity[m].n_detections == 6 for m in moths)
        assert by_identity["moth-a" if date == N1 else "moth-d"].label == "moth"
    with db.session() as s:  # every detection belongs to an individual
        assert s.execute(select(Detection.id).where(Detection.occurrence_id.is_(None))).first() is None
    counts = count_individuals_per_night(db, ExportScope.of(), cat.pipeline_id, Thresholds())
    assert {k[1]: (c.individuals, c.max_n, c.detections) for k, c in counts.items()} == {
        cat.nights[N1]: (3, 3, 18), cat.nights[N2]: (2, 2, 12)}
    # one number: the per-taxon counts, the per-night totals and the nights table agree
    per_taxon = count_individuals(db, ExportScope.of(), cat.pipeline_id, Thresholds())
    assert sum(c.individuals for c in per_taxon) == 5
    table = {r.night_id: r for r in nights_table(db, pipeline_id=cat.pipeline_id, min_score=0.5,
                                                  counted_only=True)}
    assert {n: table[n].detections for n in table} == {k[1]: c.detections for k, c in counts.items()}
    assert nights_to_track(db, cat.pipeline_id) == []  # nothing left


def test_new_images_keep_pinned_occurrences_and_a_persons_unflag(two_nights):
    cat, db = two_nights, two_nights.db
    track_catalogue_nights(db, cat.pipeline_id, list(cat.nights.values()))
    n1 = cat.nights[N1]
    occs = _occurrences(db, n1)
    ident = {cat.truth[next(iter(_members(db, o)))]: o for o in occs}
    pinned_id, screw_id = ident["moth-a"], ident["fixture"]
    pinned_before = _members(db, pinned_id)
    with db.write_session() as s:  # a person reviewed moth-a (issue 14 writes this)
        s.execute(update(Occurrence).where(Occurrence.id == pinned_id)
                  .values(pinned=True, created_by="human"))
    # a person says the screw of the first night is no fixture
    set_fixture_decision(db, screw_id, False)
    screw = _occurrences(db, n1)[screw_id]
    assert (screw.fixture, screw.fixture_reviewed, screw.pinned) == (False, True, True)
    # without that evidence, the second night's screw stands alone: no longer a fixture
    assert not any(o.fixture for o in _occurrences(db, cat.nights[N2]).values())

    # three more frames of night 1 are processed (moth-a stays, moth-f arrives)
    add_frames(cat, N1, 3, {"moth-a": 0, "moth-f": 5})
    assert nights_to_track(db, cat.pipeline_id) == [n1]
    summary = track_catalogue_nights(db, cat.pipeline_id, nights_to_track(db, cat.pipeline_id))
    assert summary.nights[0].pinned == 2
    after = _occurrences(db, n1)
    assert pinned_id in after and screw_id in after  # the same rows
    grown = _members(db, pinned_id)
    assert pinned_before < grown and {cat.truth[d] for d in grown} == {"moth-a"}
    assert after[pinned_id].n_detections == 9 and after[pinned_id].pinned
    screw = after[screw_id]
    assert (screw.fixture, screw.fixture_reviewed) == (False, True)  # the decision survived
    assert {cat.truth[d] for d in _members(db, screw_id)} == {"fixture"}
    assert len(_members(db, screw_id)) == 9  # continued into the new frames (strict re-link gates)
    # the person takes the decision back: the machine's flags return on both nights
    set_fixture_decision(db, screw_id, None)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N2]])
    assert _occurrences(db, n1)[screw_id].fixture
    assert any(o.fixture for o in _occurrences(db, cat.nights[N2]).values())
    with pytest.raises(UserInputError, match="not in the catalogue"):
        set_fixture_decision(db, 10_000, True)


def test_an_exception_before_the_commit_leaves_the_previous_occurrences(two_nights, monkeypatch):
    cat, db = two_nights, two_nights.db
    track_catalogue_nights(db, cat.pipeline_id, list(cat.nights.values()))
    before = _snapshot(db)
    add_frames(cat, N1, 2, {"moth-a": 0})

    def fail(*_args, **_kw):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(occurrence_store, "set_flags", fail)  # the last step of the write
    with pytest.raises(RuntimeError):
        track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    occ, det = _snapshot(db)
    assert occ == before[0]
    assert [d for d in det if d[0] in dict(before[1])] == before[1]
    assert all(o is None for d, o in det if d not in dict(before[1]))  # new ones: untracked


KILLER = """
import os, signal, sys
from trapgui.db import open_database, occurrence_store
from trapgui.pipeline.tracking_job import track_catalogue_nights

def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction: rows deleted and inserted

occurrence_store.set_flags = die
db = open_database(sys.argv[1])
track_catalogue_nights(db, int(sys.argv[2]), [int(sys.argv[3])])
"""


def test_a_process_killed_mid_transaction_leaves_the_previous_occurrences(two_nights):
    cat, db = two_nights, two_nights.db
    track_catalogue_nights(db, cat.pipeline_id, list(cat.nights.values()))
    add_frames(cat, N1, 2, {"moth-z": 6})
    before = _snapshot(db)
    path = db.path
    proc = subprocess.run([sys.executable, "-c", KILLER, str(path), str(cat.pipeline_id),
                           str(cat.nights[N1])], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert _snapshot(db) == before
    # and the next tracking finishes the job
    summary = track_catalogue_nights(db, cat.pipeline_id, nights_to_track(db, cat.pipeline_id))
    assert [n.night_id for n in summary.nights] == [cat.nights[N1]]


def test_tracking_is_a_job_with_progress_and_cancel(two_nights):
    from trapgui.core.jobs import EventLog, JobControl, Progress, run_job

    cat, db = two_nights, two_nights.db
    log = EventLog()
    result = run_job(tracking_job(db, cat.pipeline_id, list(cat.nights.values())), log)
    assert [(p.done, p.total, p.unit) for p in log.of(Progress)] == [(1, 2, "nights"), (2, 2, "nights")]
    assert result.individuals == 5 and result.fixtures == 2 and not result.cancelled
    control = JobControl()
    control.cancel()
    stopped = track_catalogue_nights(db, cat.pipeline_id, list(cat.nights.values()), None, None,
                                     control)
    assert stopped.cancelled and stopped.nights == ()


def test_bad_stored_data_skips_the_night_with_a_sentence(two_nights):
    cat, db = two_nights, two_nights.db
    with db.write_session() as s:
        first = s.execute(select(Detection.id).order_by(Detection.id)).scalars().first()
        s.execute(update(Detection).where(Detection.id == first).values(embedding=b"\x00\x01\x02"))
    summary = track_catalogue_nights(db, cat.pipeline_id, list(cat.nights.values()))
    assert [n.date for n in summary.nights] == [N2.isoformat()]
    assert len(summary.problems) == 1 and "2022-06-21 was not tracked" in summary.problems[0]
    assert "damaged" in summary.problems[0]


def test_a_catalogue_of_the_base_schema_migrates(tmp_path):
    old = tmp_path / "v5.sqlite3"
    con = sqlite3.connect(old)
    con.executescript((REPO / "tests" / "data" / "catalogue-v5.sql").read_text())
    con.execute("INSERT INTO deployments (id, path, name, created_at, kind, night_cutoff_hour) "
                "VALUES (1, '/traps/a', 'a', '2026-11-01 00:00:00', 'local', 12)")
    con.execute("INSERT INTO occurrences (id, pipeline_id, deployment_id, n_detections, fixture, "
                "pinned, created_by, updated_at) VALUES (1, 1, 1, 0, 1, 0, 'machine', 0)")
    con.commit()
    con.close()
    db = open_database(old)
    try:
        assert db.schema_version() == LATEST_VERSION
        with db.session() as s:
            row = s.execute(select(Occurrence.fixture, Occurrence.fixture_reviewed,
                                   Occurrence.fixture_candidate)).one()
        assert tuple(row) == (True, False, None)
        con = sqlite3.connect(old)
        assert "sharpness" in {r[1] for r in con.execute("PRAGMA table_info(detections)")}
        con.close()
    finally:
        db.close()
    open_database(old).close()  # opens again: the migration ran once


def test_tracking_settings_are_one_validated_group(tmp_path):
    s = Settings()
    assert s.tracking == TrackingParams().to_dict() and s.tracking_params() == TrackingParams()
    s.tracking = {**s.tracking, "max_move": -1.0}
    assert any("max_move" in p for p in s.validate())
    s.tracking = {**TrackingParams().to_dict(), "max_cost": 3.0, "from_a_newer_version": 1}
    path = tmp_path / "settings.json"
    save_settings(s, path)
    back = load_settings(path)
    assert back.tracking_params().max_cost == 3.0 and back.tracking["from_a_newer_version"] == 1
    path.write_text('{"tracking": {"max_gap_s": "soon", "relink": false}}')
    back = load_settings(path)  # the bad value alone falls back to its default
    assert back.tracking_params().max_gap_s == 1800.0 and back.tracking_params().relink is False


def test_the_embedding_kind_is_part_of_the_pipeline_key():
    from trapgui.ml.appearance import DESCRIPTOR_DIM
    from trapgui.pipeline.spec import PipelineSpec

    from trapgui.core.embedding_kind import EMBEDDING_DIM

    assert DESCRIPTOR_DIM == EMBEDDING_DIM
    plain, classified = PipelineSpec(binary=None), PipelineSpec(binary="moth_binary_resnet50_2024")
    assert plain.result_config()["embedding"] == embedding_kind(None) == "descriptor:v1:128"
    assert classified.result_config()["embedding"].startswith("features:moth_binary_resnet50_2024:")
    assert PipelineSpec(binary=None, species="x").embedding_kind == embedding_kind("x")
    assert plain.key != classified.key


# ---- CLI ---------------------------------------------------------------------------------------
def cli(capsys, *argv):
    from trapgui.cli.main import run_cli

    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_track_and_nights(two_nights, capsys):
    db = two_nights.db
    path = str(db.path)
    code, out, err = cli(capsys, "--db", path, "nights")
    assert code == 0, err
    # the table on stdout, what it counted under it on stderr (the table stays machine-readable)
    assert "INDIVIDUALS" in out and "MAXN" in out and "at least 0.50" in err
    assert "belong to no individual yet" in err  # nothing tracked yet
    code, out, err = cli(capsys, "--db", path, "track")
    assert code == 0, err
    assert "2022-06-21  builtin: 24 detections -> 4 occurrences" in out
    assert "Tracked 2 nights" in out
    code, out, _ = cli(capsys, "--db", path, "track")
    assert code == 0 and "Every night is tracked already" in out
    code, out, _ = cli(capsys, "--db", path, "track", "--night", "2022-06-22")
    assert code == 0 and "Tracked 1 night:" in out
    code, out, err = cli(capsys, "--db", path, "nights", "--detection-threshold", "0.5")
    assert code == 0, err
    assert "Model configuration: builtin" in err
    lines = out.splitlines()
    header = lines[0].split()
    rows = {line.split()[1]: line.split() for line in lines[1:3]}
    col = {h: i - len(header) for i, h in enumerate(header)}  # from the right: one word each
    assert rows["2022-06-21"][col["INDIVIDUALS"]] == "3" and rows["2022-06-22"][col["MAXN"]] == "2"
    assert rows["2022-06-21"][col["DETECTIONS"]] == "18"  # the screw's 6 left out
    assert "belong to no individual" not in out + err
    code, out, err = cli(capsys, "--db", path, "nights", "--detection-threshold", "0.95")
    assert code == 0 and "at least 0.95" in err
    code, _, err = cli(capsys, "--db", path, "track", "--pipeline", "nope")
    assert code != 0 and "No model configuration is called 'nope'" in err


def test_the_tracking_service_gives_the_views_their_rows(tmp_path):
    from trapgui.services.app_services import Services

    services = Services.create(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                               db_path=tmp_path / "c.sqlite3")
    try:
        cat = make_catalogue(services.db)
        add_frames(cat, N1, 4, {"moth-a": 0, "moth-b": 1})
        add_frames(cat, N2, 4, {"moth-c": 2})
        from trapgui.core.jobs import run_job

        summary = run_job(services.tracking.tracking_job(cat.pipeline_id), None)
        assert summary.individuals == 3 and summary.fixtures == 2
        rows = services.tracking.night_occurrences(cat.pipeline_id, cat.nights[N1])
        assert len(rows) == 3 and sum(r.fixture for r in rows) == 1
        moth = next(r for r in rows if not r.fixture)
        assert moth.best_image_path.endswith(".jpg") and moth.best_box is not None
        assert moth.n_detections == 4 and moth.best_score == pytest.approx(0.9)
        frames = services.tracking.occurrence_detections(moth.id)
        assert [f.captured for f in frames] == sorted(f.captured for f in frames)
        assert sum(f.is_best for f in frames) == 1 and len(frames) == 4
        counted = services.tracking.night_occurrences(cat.pipeline_id, cat.nights[N1],
                                                      include_fixtures=False)
        assert len(counted) == 2
        per_night = services.tracking.counts_per_night(cat.pipeline_id)
        assert per_night[(cat.deployment_id, cat.nights[N1])].individuals == 2
        per_taxon = services.tracking.counts_per_taxon(cat.pipeline_id, [cat.nights[N1]])
        assert [(c.individuals, c.max_n) for c in per_taxon] == [(2, 2)]  # no label >= 0.5 taxon
        screw = next(r for r in rows if r.fixture)
        services.tracking.set_fixture(screw.id, False)
        assert services.tracking.counts_per_night(cat.pipeline_id)[
            (cat.deployment_id, cat.nights[N1])].individuals == 3
    finally:
        services.close()
