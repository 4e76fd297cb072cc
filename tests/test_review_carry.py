"""A person's decisions follow the insect to another model configuration of the night (issue
14, "Human work survives"): real SQLite catalogues, the real tracking job, the real counts and
exports. Configuration A is the synthetic night of ``tests.tracking_catalogue``; configuration
B gets its detections through the engine's own result writer (``jobqueue.record_results``),
box for box from A's (jittered), so the test decides where B's tracker splits and joins."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue, open_database, review_carry, review_store
from trapgui.db.counts import count_individuals, count_individuals_per_night
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.migrations import LATEST_VERSION
from trapgui.db.tables import Detection, Occurrence, ReviewAction, ReviewCarry
from trapgui.pipeline.tracking_job import track_catalogue_nights
from trapgui.tracking import encode_embedding

REPO = Path(__file__).resolve().parent.parent
N1 = dt.date(2022, 6, 21)
ME = "A. Reviewer"
SPECIES = "Agrotis exclamationis"


def _identities(cat, pipeline_id) -> dict[str, set[int]]:
    """identity -> occurrences of the pipeline holding its detections."""
    with cat.db.session() as s:
        rows = s.execute(select(Detection.id, Detection.occurrence_id)
                         .where(Detection.pipeline_id == pipeline_id)).all()
    out: dict[str, set[int]] = {}
    for det, occ in rows:
        if det in cat.truth:
            out.setdefault(cat.truth[det], set()).add(occ)
    return out


def _one(cat, pipeline_id, identity) -> int:
    (occ,) = _identities(cat, pipeline_id)[identity]
    return occ


def _occ(db, occ_id):
    with db.session() as s:
        return s.execute(select(Occurrence).where(Occurrence.id == occ_id)).scalars().one()


def _unit(rng, n=128):
    v = rng.normal(size=n)
    return v / np.linalg.norm(v)


def other_configuration(cat, key="o", look=None, label=SPECIES) -> int:
    """Configuration B: A's boxes (jittered by a pixel), B's own labels; ``look(identity,
    frame) -> str`` names the appearance each box gets (the same name, the same look; "-name"
    the opposite of name's), so a test makes B's tracker split one insect or join two. The truth of B's detections is kept
    in ``cat.truth`` like A's."""
    rng = np.random.default_rng(11)
    pid = jobqueue.get_or_create_pipeline(cat.db, key * 64, f"builtin + {key}",
                                          {"detector": "builtin", "species": key})
    with cat.db.session() as s:
        rows = s.execute(select(Detection.id, Detection.image_id, Detection.x1, Detection.y1,
                                Detection.x2, Detection.y2)
                         .where(Detection.pipeline_id == cat.pipeline_id,
                                Detection.detector != "human")
                         .order_by(Detection.image_id, Detection.id)).all()
    frame_of = {img: k for k, img in enumerate(sorted({r[1] for r in rows}))}
    looks: dict[str, np.ndarray] = {}
    results: dict[int, list] = {img: [] for img in frame_of}
    names: dict[int, list[str]] = {img: [] for img in frame_of}
    for det, img, x1, y1, x2, y2 in rows:
        identity = cat.truth[det]
        name = look(identity, frame_of[img]) if look else identity
        if name.startswith("-"):  # the opposite look: the tracker never links the two
            base = -looks.setdefault(name[1:], _unit(rng))
        else:
            base = looks.setdefault(name, _unit(rng))
        emb = base + rng.normal(0, 0.05, 128)
        lab = "nonmoth" if identity == "fixture" else label
        results[img].append(DetectionResult(
            Box(*(np.array([x1, y1, x2, y2]) + rng.normal(0, 1.0, 4)).tolist()), 0.85, "builtin",
            [ClassificationResult(key, Rank.SPECIES, lab, 0.7, [lab], [0.7])],
            encode_embedding(emb / np.linalg.norm(emb)), 1.0))
        names[img].append(identity)
    jobqueue.enqueue(cat.db, pid, sorted(frame_of))
    with cat.db.write_session() as s:
        jobqueue.record_results(s, pid, None, [ImageResult(i, d) for i, d in results.items()])
        new = s.execute(select(Detection.id, Detection.image_id)
                        .where(Detection.pipeline_id == pid)
                        .order_by(Detection.image_id, Detection.id)).all()
    by_image: dict[int, list[int]] = {}
    for det, img in new:
        by_image.setdefault(img, []).append(det)
    for img, dets in by_image.items():
        cat.truth.update(zip(dets, names[img]))
    return pid


@pytest.fixture
def night(db):
    cat = make_catalogue(db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1, "moth-c": 2}, fixture=False)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    return cat


def _counts(db, pipeline_id, det=0.5, label=0.5):
    return {(c.label, c.rank): (c.individuals, c.human_identified)
            for c in count_individuals(db, ExportScope.of(), pipeline_id, Thresholds(det, label))}


def test_confirm_relabel_and_reject_follow_the_insect_one_to_one(night):
    cat, db = night, night.db
    a, b, c = (_one(cat, cat.pipeline_id, k) for k in ("moth-a", "moth-b", "moth-c"))
    review_store.confirm(db, [a], ME)
    review_store.relabel(db, [b], "Noctua pronuba", "species", "B. Other")
    review_store.reject(db, [c], ME)
    when_b = _occ(db, b).identified_at
    other = other_configuration(cat)
    summary = track_catalogue_nights(db, other, [cat.nights[N1]])
    assert (summary.carried, summary.to_check) == (3, 0)
    assert "3 decisions of a person carried" in summary.describe()
    a2, b2, c2 = (_one(cat, other, k) for k in ("moth-a", "moth-b", "moth-c"))
    ra, rb, rc = _occ(db, a2), _occ(db, b2), _occ(db, c2)
    # A's "moth" was confirmed; B says Agrotis: the person's label is carried, as a relabel
    assert (ra.review_state, ra.review_label, ra.review_rank, ra.carried_from) == \
        ("relabelled", "moth", "binary", a)
    assert (ra.reviewed_machine_label, ra.label) == (SPECIES, SPECIES) and ra.pinned
    assert (rb.review_state, rb.review_label, rb.identified_by, rb.identified_at,
            rb.carried_from) == ("relabelled", "Noctua pronuba", "B. Other", when_b, b)
    assert (rc.review_state, rc.carried_from) == ("rejected", c)
    # counted exactly like decisions made in B: the rejected one nowhere
    assert _counts(db, other) == {("moth", "binary"): (1, 1), ("Noctua pronuba", "species"): (1, 1)}
    assert _counts(db, other, 0.99, 0.99) == _counts(db, other)
    # the carry is one review action, by nobody new, undoable like any action
    with db.session() as s:
        action = s.execute(select(ReviewAction).order_by(ReviewAction.id.desc())).scalars().first()
    assert action.kind == "carry" and "3 decisions carried from builtin" in action.summary
    review_store.undo(db)
    assert all(_occ(db, o).review_state is None and not _occ(db, o).pinned for o in (a2, b2, c2))
    # an undone carry is not carried again by the next tracking
    again = track_catalogue_nights(db, other, [cat.nights[N1]])
    assert again.carried == 0 and _occ(db, b2).review_state is None


def _checks(db, pipeline_id):
    with db.session() as s:
        return review_carry.open_checks(s, pipeline_id)


def test_a_split_and_a_merge_are_flagged_not_guessed(db):
    cat = make_catalogue(db)
    # A: moth-a at place 0 all night; at place 1 A sees two looks (its tracker makes two
    # occurrences of what B, with one look, tracks as one insect)
    add_frames(cat, N1, 3, {"moth-a": 0, "moth-b": 1}, fixture=False)
    cat.looks["moth-b2"] = -cat.looks["moth-b"]
    add_frames(cat, N1, 3, {"moth-a": 0, "moth-b2": 1}, fixture=False)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    a, b, b2 = (_one(cat, cat.pipeline_id, k) for k in ("moth-a", "moth-b", "moth-b2"))
    assert b != b2
    review_store.relabel(db, [a], "Noctua pronuba", "species", ME)
    review_store.relabel(db, [b], "Xestia c-nigrum", "species", ME)
    review_store.relabel(db, [b2], "Xestia c-nigrum", "species", ME)

    def look(identity, frame):  # B: moth-a changes look halfway (split), moth-b keeps one
        if identity == "moth-a":
            return "a" if frame < 3 else "-a"
        return "b" if identity.startswith("moth-b") else identity

    other = other_configuration(cat, look=look)
    summary = track_catalogue_nights(db, other, [cat.nights[N1]])
    assert (summary.carried, summary.to_check) == (0, 3)
    split_parts = _identities(cat, other)["moth-a"]
    (joined,) = _identities(cat, other)["moth-b"] | _identities(cat, other)["moth-b2"]
    assert len(split_parts) == 2
    # nothing was guessed: B's occurrences are as the machine made them
    for occ in (*split_parts, joined):
        row = _occ(db, occ)
        assert (row.review_state, row.carried_from, row.pinned) == (None, None, False)
    checks = {c.source_occurrence_id: c for c in _checks(db, other)}
    assert set(checks) == {a, b, b2}
    assert set(checks[a].look_at) == split_parts
    assert checks[a].reason.startswith(
        f"Needs a look: the decision from builtin (occurrence {a}, labelled Noctua pronuba) "
        "could not be carried: this configuration splits it into occurrences")
    assert checks[b].look_at == (joined,) and f"joins it with decided occurrence {b2}" in checks[b].reason
    assert _counts(db, other) == {(SPECIES, "species"): (3, 0)}
    # tracking again rebuilds the checks, never doubles them
    track_catalogue_nights(db, other, [cat.nights[N1]])
    assert len(_checks(db, other)) == 3
    with db.session() as s:
        assert s.execute(select(ReviewCarry)).scalars().all().__len__() == 3
    # a person settles the joined one in B: its two checks are gone, the split stays listed
    review_store.confirm(db, [joined], ME)
    assert {c.source_occurrence_id for c in _checks(db, other)} == {a}


def test_re_running_carries_once_and_a_later_decision_in_the_new_configuration_wins(night):
    cat, db = night, night.db
    a, b = (_one(cat, cat.pipeline_id, k) for k in ("moth-a", "moth-b"))
    review_store.relabel(db, [a], "Noctua pronuba", "species", ME)
    review_store.reject(db, [b], ME)
    other = other_configuration(cat)
    track_catalogue_nights(db, other, [cat.nights[N1]])
    a2, b2 = _one(cat, other, "moth-a"), _one(cat, other, "moth-b")

    def state():
        with db.session() as s:
            occ = sorted(tuple(r) for r in s.execute(select(
                Occurrence.id, Occurrence.review_state, Occurrence.review_label,
                Occurrence.carried_from, Occurrence.n_detections)))
            actions = s.execute(select(ReviewAction.id)).scalars().all()
            ledger = sorted(tuple(r) for r in s.execute(select(
                ReviewCarry.source_occurrence_id, ReviewCarry.state)))
        return occ, actions, ledger

    first = state()
    assert first[2] == sorted([(a, "carried"), (b, "carried")])
    for _ in range(2):  # both configurations tracked again: nothing more
        track_catalogue_nights(db, other, [cat.nights[N1]])
        track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
        assert state() == first
    # new images for the night: B re-tracks around the pinned occurrence, no second carry
    add_frames(cat, N1, 2, {"moth-a": 0, "moth-b": 1, "moth-c": 2}, fixture=False)
    # the person changes their mind in B: that decision wins over the carried one
    review_store.relabel(db, [a2], "Noctua comes", "species", "C. Later")
    track_catalogue_nights(db, other, [cat.nights[N1]])
    row = _occ(db, a2)
    assert (row.review_label, row.identified_by, row.carried_from) == ("Noctua comes", "C. Later", None)
    assert _occ(db, b2).review_state == "rejected"
    # and B's own decision does not travel back over A's
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    assert _occ(db, a).review_label == "Noctua pronuba"


def test_a_persons_merge_and_drawn_box_carry_as_the_frames_they_made(db, capsys):
    cat = make_catalogue(db)
    add_frames(cat, N1, 3, {"moth-a": 0, "moth-b": 1}, fixture=False)
    cat.looks["moth-a2"] = -cat.looks["moth-a"]
    add_frames(cat, N1, 3, {"moth-a2": 0, "moth-b": 1}, fixture=False)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    a, a2 = _one(cat, cat.pipeline_id, "moth-a"), _one(cat, cat.pipeline_id, "moth-a2")
    # A's tracker split moth-a by its look; the person merges the halves and labels it
    review_store.merge(db, a, [a2], ME)
    review_store.relabel(db, [a], "Noctua pronuba", "species", ME)
    # and draws a box around an insect the detector missed, in two frames
    with db.session() as s:
        images = s.execute(select(Detection.image_id).where(
            Detection.pipeline_id == cat.pipeline_id).distinct()
            .order_by(Detection.image_id)).scalars().all()
    drawn = review_store.add_box(db, images[0], cat.pipeline_id, (1500, 600, 1560, 660), ME)
    (missed,) = drawn.created_ids
    review_store.add_box(db, images[1], cat.pipeline_id, (1501, 601, 1561, 661), ME,
                         occurrence_id=missed)
    review_store.relabel(db, [missed], "Noctuidae sp. A", None, ME)

    # B tracks moth-a as two occurrences, like A's machine did
    def look(identity, frame):
        return "-moth-a" if identity == "moth-a2" else identity
    other = other_configuration(cat, look=look)
    summary = track_catalogue_nights(db, other, [cat.nights[N1]])
    assert (summary.carried, summary.to_check) == (2, 0)
    (merged,) = _identities(cat, other)["moth-a"] | _identities(cat, other)["moth-a2"]
    row = _occ(db, merged)
    assert (row.review_label, row.carried_from, row.n_detections, row.pinned) == (
        "Noctua pronuba", a, 6, True)
    # the drawn boxes are the person's in B too: copies, in an occurrence carrying the label
    with db.session() as s:
        copies = s.execute(select(Detection.occurrence_id, Detection.detector, Detection.score)
                           .where(Detection.pipeline_id == other,
                                  Detection.detector == "human")).all()
    assert len(copies) == 2 and len({c[0] for c in copies}) == 1
    copy_occ = _occ(db, copies[0][0])
    assert (copy_occ.review_label, copy_occ.review_rank, copy_occ.carried_from,
            copy_occ.created_by) == ("Noctuidae sp. A", "morphospecies", missed, "human")
    counts = _counts(db, other)
    assert counts[("Noctua pronuba", "species")] == (1, 1)
    assert counts[("Noctuidae sp. A", "morphospecies")] == (1, 1)
    assert counts[(SPECIES, "species")][0] == 1  # moth-b, the machine's
    # B tracked again keeps the carried frame sets, and copies nothing twice
    track_catalogue_nights(db, other, [cat.nights[N1]])
    with db.session() as s:
        assert len(s.execute(select(Detection.id).where(
            Detection.pipeline_id == other, Detection.detector == "human")).all()) == 2
    assert _occ(db, merged).n_detections == 6 and _counts(db, other) == counts
    # one undo (`trapgui review undo`, Services.review) takes the carry back: the copies go;
    # B's tracking had rebuilt the occurrences the merged boxes came from, so the undo tracks
    # them again at once, and the undone carry is not carried again
    code, out, err = _cli(capsys, "--db", str(db.path), "review", "undo")
    assert code == 0, err
    assert "Undone: 2 decisions carried from builtin" in out
    with db.session() as s:
        assert not s.execute(select(Detection.id).where(
            Detection.pipeline_id == other, Detection.detector == "human")).all()
        assert not s.execute(select(Detection.id).where(
            Detection.pipeline_id == other, Detection.occurrence_id.is_(None))).all()
    assert _counts(db, other) == {(SPECIES, "species"): (3, 0)}
    assert len(_identities(cat, other)["moth-a"] | _identities(cat, other)["moth-a2"]) == 2


def _cli(capsys, *argv):
    from trapgui.cli.main import run_cli

    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_nights_review_list_and_a_camtrap_dp_export_of_the_new_configuration_count_them(
        night, capsys, tmp_path):
    from sqlalchemy import update

    from tests.camtrap_validation import validate
    from trapgui.db.tables import Deployment

    cat, db = night, night.db
    a, b, c = (_one(cat, cat.pipeline_id, k) for k in ("moth-a", "moth-b", "moth-c"))
    review_store.relabel(db, [a], "Noctua pronuba", "species", ME)
    review_store.reject(db, [b], ME)
    # B splits moth-c by its look: that decision waits for a person
    review_store.relabel(db, [c], "Xestia c-nigrum", "species", ME)
    other = other_configuration(
        cat, look=lambda identity, frame: "-c" if identity == "moth-c" and frame >= 3
        else ("c" if identity == "moth-c" else identity))
    track_catalogue_nights(db, other, [cat.nights[N1]])
    a2 = _one(cat, other, "moth-a")
    c_parts = _identities(cat, other)["moth-c"]
    path = str(db.path)
    with db.write_session() as s:  # what Camtrap DP needs of a trap (`trapgui trap set`)
        s.execute(update(Deployment).values(latitude=46.5, longitude=6.6,
                                            clock_utc_offset_min=120))

    # the nights table of B: moth-a (carried) and the two halves of moth-c; moth-b rejected
    per_night = count_individuals_per_night(db, ExportScope.of(), other, Thresholds(0.5, 0.5))
    assert per_night[(cat.deployment_id, cat.nights[N1])].individuals == 3
    code, out, err = _cli(capsys, "--db", path, "nights", "--pipeline", "builtin + o",
                          "--detection-threshold", "0.5", "--classification-threshold", "0.5")
    assert code == 0, err
    lines = out.splitlines()
    header = lines[0].split("  ")
    header = [h.strip() for h in header if h.strip()]
    line = next(ln for ln in lines if "2022-06-21" in ln)
    cells = [c.strip() for c in line.split("  ") if c.strip()]
    assert dict(zip(header, cells))["INDIVIDUALS"] == "3", out

    code, out, err = _cli(capsys, "--db", path, "review", "list", "--pipeline", "builtin + o")
    assert code == 0, err
    mine = next(ln for ln in out.splitlines() if ln.startswith(f"{a2} "))
    assert "Noctua pronuba" in mine and ME in mine and f"from {a}" in mine
    code, out, err = _cli(capsys, "--db", path, "review", "list", "--pipeline", "builtin + o",
                          "--needs-check")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["LOOK", "AT"] and len(lines) == 2
    assert ", ".join(str(o) for o in sorted(c_parts)) in lines[1]
    assert "could not be carried: this configuration splits it" in lines[1]
    code, out, err = _cli(capsys, "--db", path, "review", "list", "--pipeline", "builtin + o",
                          "--needs-check", "--csv")
    rows_csv = list(csv.reader(out.splitlines()))
    assert rows_csv[0] == ["look_at", "night", "decided_occurrence", "why"]
    assert rows_csv[1][2] == str(c)

    out_dir = tmp_path / "cdp"
    code, _, err = _cli(capsys, "--db", path, "export", "camtrap-dp", "--out", str(out_dir),
                        "--pipeline", "builtin + o")
    assert code == 0, err
    assert validate(out_dir) == []
    with open(out_dir / "observations.csv", encoding="utf-8", newline="") as fh:
        obs = list(csv.DictReader(fh))
    events = {o["eventID"]: o for o in obs if o["observationLevel"] == "event"}
    carried = events[f"occ{a2}"]
    assert (carried["scientificName"], carried["classificationMethod"],
            carried["classifiedBy"]) == ("Noctua pronuba", "human", ME)
    assert f"machineLabel:{SPECIES}" in carried["observationTags"]
    assert len(events) == 3 and all(f"occ{o}" in events for o in c_parts)
    assert {events[f"occ{o}"]["classificationMethod"] for o in c_parts} == {"machine"}


def test_a_catalogue_of_schema_7_migrates(tmp_path):
    old = tmp_path / "v7.sqlite3"
    con = sqlite3.connect(old)
    con.executescript((REPO / "tests" / "data" / "catalogue-v7.sql").read_text())
    con.execute("INSERT INTO deployments (id, path, name, created_at, kind, night_cutoff_hour) "
                "VALUES (1, '/traps/a', 'a', '2027-01-01 00:00:00', 'local', 12)")
    con.execute("INSERT INTO occurrences (id, pipeline_id, deployment_id, n_detections, fixture, "
                "fixture_reviewed, pinned, created_by, updated_at, label, review_state, "
                "review_label, identified_by) VALUES (1, 1, 1, 0, 0, 0, 1, 'machine', 0, "
                "'moth', 'relabelled', 'Noctua pronuba', 'A. Reviewer')")
    con.commit()
    con.close()
    db = open_database(old)
    try:
        assert db.schema_version() == LATEST_VERSION
        with db.session() as s:
            row = s.execute(select(Occurrence.review_label, Occurrence.identified_by,
                                   Occurrence.carried_from)).one()
            assert tuple(row) == ("Noctua pronuba", "A. Reviewer", None)
            assert s.execute(select(ReviewCarry)).all() == []
            assert review_carry.open_checks(s, 1) == []
    finally:
        db.close()
    open_database(old).close()  # opens again: the migration ran once
