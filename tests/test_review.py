"""Review (issue 14) on a real catalogue: a person's labels beside the machine's, the action log
and undo, track corrections, and human work surviving re-tracking, another model's run and
threshold changes (real SQLite files, the real tracking job, the real counting query)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.core.errors import UserInputError
from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue, open_database, review_queries, review_store
from trapgui.db.counts import count_individuals, count_individuals_per_night
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.migrations import LATEST_VERSION
from trapgui.db.tables import Detection, Image, Morphospecies, Occurrence
from trapgui.pipeline.tracking_job import track_catalogue_nights

REPO = Path(__file__).resolve().parent.parent
N1 = dt.date(2022, 6, 21)
ME = "A. Reviewer"


@pytest.fixture
def night(db):
    cat = make_catalogue(db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1, "moth-c": 2}, fixture=False)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    return cat


def _by_identity(cat) -> dict[str, int]:
    with cat.db.session() as s:
        rows = s.execute(select(Detection.id, Detection.occurrence_id)
                         .where(Detection.pipeline_id == cat.pipeline_id)).all()
    out = {}
    for det, occ in rows:
        out.setdefault(cat.truth[det], occ)
    return out


def _state(db):
    """Everything review may touch, to compare before and after an undo."""
    with db.session() as s:
        occ = sorted(tuple(r) for r in s.execute(select(
            Occurrence.id, Occurrence.n_detections, Occurrence.pinned, Occurrence.review_state,
            Occurrence.review_label, Occurrence.review_rank, Occurrence.identified_by,
            Occurrence.merged_into, Occurrence.fixture, Occurrence.fixture_reviewed,
            Occurrence.first_seen, Occurrence.last_seen, Occurrence.best_detection_id)))
        det = sorted(tuple(r) for r in s.execute(select(Detection.id, Detection.occurrence_id)))
        morpho = sorted(s.execute(select(Morphospecies.name)).scalars())
    return occ, det, morpho


def _occ(db, occ_id):
    with db.session() as s:
        return s.execute(select(Occurrence).where(Occurrence.id == occ_id)).scalars().one()


def _counts(cat, detection=0.5, label=0.5):
    return {(c.label, c.rank): (c.individuals, c.human_identified, c.detections)
            for c in count_individuals(cat.db, ExportScope.of(), cat.pipeline_id,
                                       Thresholds(detection, label))}


def test_label_decisions_keep_the_machine_label_beside_and_undo_restores_them(night):
    cat, db = night, night.db
    ids = _by_identity(cat)
    a, b, c = ids["moth-a"], ids["moth-b"], ids["moth-c"]
    start = _state(db)
    done = review_store.confirm(db, [a], ME)
    row = _occ(db, a)
    assert (row.review_state, row.review_label, row.identified_by, row.pinned) == \
        ("confirmed", "moth", ME, True)
    assert (row.reviewed_machine_label, row.reviewed_machine_score) == ("moth", row.label_score)
    assert row.identified_at is not None and done.action_id is not None

    out = review_store.relabel(db, [b], "Noctuidae sp. A", None, ME, known={"moth": "binary"})
    assert out.summary == "1 occurrence labelled 'Noctuidae sp. A'"
    row = _occ(db, b)
    assert (row.review_state, row.review_label, row.review_rank, row.label) == \
        ("relabelled", "Noctuidae sp. A", "morphospecies", "moth")
    assert review_queries.morphospecies(db) == [("Noctuidae sp. A", "morphospecies")]
    # the same name again is the existing morphospecies, not a second one
    review_store.relabel(db, [c], "Noctuidae  sp. A ", None, ME)
    assert len(review_queries.morphospecies(db)) == 1 and _occ(db, c).review_label == "Noctuidae sp. A"
    review_store.reject(db, [c], ME)
    assert _occ(db, c).review_state == "rejected"

    # every action comes back off, newest first, to exactly the state before
    for _ in range(4):
        review_store.undo(db, night_id=cat.nights[N1])
    assert _state(db) == start
    with pytest.raises(UserInputError, match="Nothing to undo"):
        review_store.undo(db)
    history = review_queries.history(db)
    assert [h[1] for h in history] == ["reject", "relabel", "relabel", "confirm"]
    assert all(h[5] for h in history) and history[-1][3] == ME


def test_bad_decisions_are_sentences_and_change_nothing(night):
    cat, db = night, night.db
    a = _by_identity(cat)["moth-a"]
    start = _state(db)
    for call, match in (
            (lambda: review_store.confirm(db, [a, 99_999], ME), "99999 is not in the catalogue"),
            (lambda: review_store.relabel(db, [a], "   ", None, ME), "cannot be empty"),
            (lambda: review_store.relabel(db, [a], "x" * 300, None, ME), "at most 255"),
            (lambda: review_store.relabel(db, [a], "a\x1bb", None, ME), "control characters"),
            (lambda: review_store.confirm(db, [], ME), "No occurrence given"),
            (lambda: review_store.merge(db, a, [a], ME), "at least one other"),
            (lambda: review_store.undo(db, action_id=5), "not the latest")):
        with pytest.raises(UserInputError, match=match):
            call()
    assert _state(db) == start


def test_a_reviewed_occurrence_survives_re_tracking_after_new_images(night):
    cat, db = night, night.db
    ids = _by_identity(cat)
    a, b = ids["moth-a"], ids["moth-b"]
    review_store.relabel(db, [a], "Noctua pronuba", "species", ME)
    review_store.reject(db, [b], ME)
    members = {d for d, o in _dets(db) if o == a}
    # three more frames are processed: moth-a stays, a new moth arrives; the night re-tracks
    add_frames(cat, N1, 3, {"moth-a": 0, "moth-b": 1, "moth-f": 5}, fixture=False)
    summary = track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    assert summary.nights[0].pinned == 2
    row = _occ(db, a)
    assert (row.review_state, row.review_label, row.review_rank, row.identified_by) == \
        ("relabelled", "Noctua pronuba", "species", ME)
    grown = {d for d, o in _dets(db) if o == a}
    assert members < grown and {cat.truth[d] for d in grown} == {"moth-a"}
    assert _occ(db, b).review_state == "rejected"
    counts = _counts(cat)
    assert counts[("Noctua pronuba", "species")] == (1, 1, 9)
    assert counts[("moth", "binary")][0] == 2  # moth-c and the new moth-f; moth-b rejected
    # and the tracking job run again from scratch changes nothing of it
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    assert _counts(cat) == counts


def _dets(db):
    with db.session() as s:
        return s.execute(select(Detection.id, Detection.occurrence_id)).all()


def test_a_run_with_another_model_never_touches_the_reviewed_occurrences_and_carries_them(night):
    cat, db = night, night.db
    a = _by_identity(cat)["moth-a"]
    review_store.relabel(db, [a], "Noctua pronuba", "species", ME)
    before = _state(db)
    # the same images processed with another classifier: another pipeline, its own results
    other = jobqueue.get_or_create_pipeline(db, "o" * 64, "builtin + species",
                                            {"detector": "builtin", "species": "sp"})
    with db.session() as s:
        boxes = s.execute(select(Detection.image_id, Detection.x1, Detection.y1, Detection.x2,
                                 Detection.y2, Detection.embedding)
                          .where(Detection.pipeline_id == cat.pipeline_id)).all()
        images = sorted(s.execute(select(Image.id)).scalars())
    results = {i: [] for i in images}
    for img, x1, y1, x2, y2, emb in boxes:
        results[img].append(DetectionResult(
            Box(x1, y1, x2, y2), 0.8, "builtin",
            [ClassificationResult("sp", Rank.SPECIES, "Agrotis exclamationis", 0.7,
                                  ["Agrotis exclamationis"], [0.7])], emb, 1.0))
    jobqueue.enqueue(db, other, images)
    with db.write_session() as s:
        jobqueue.record_results(s, other, None, [ImageResult(i, d) for i, d in results.items()])
    track_catalogue_nights(db, other, [cat.nights[N1]])
    # also the first pipeline tracked again: the person's decision is where it was
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    after = _state(db)
    mine = [o for o in after[0] if o[0] in {r[0] for r in before[0]}]
    assert mine == before[0]
    assert _counts(cat)[("Noctua pronuba", "species")][:2] == (1, 1)
    # the other configuration's occurrence of the same insect carries the person's label
    # (tests/test_review_carry.py has the rules); the others stay the machine's
    theirs = count_individuals(db, ExportScope.of(), other, Thresholds())
    assert sorted((c.label, c.individuals, c.human_identified) for c in theirs) == [
        ("Agrotis exclamationis", 2, 0), ("Noctua pronuba", 1, 1)]


def test_thresholds_never_override_a_persons_decision(night):
    cat, db = night, night.db
    ids = _by_identity(cat)
    a, b = ids["moth-a"], ids["moth-b"]
    review_store.relabel(db, [a], "Noctuidae sp. A", None, ME)
    review_store.reject(db, [b], ME)
    for det_t, label_t in ((0.0, 0.0), (0.5, 0.5), (0.95, 0.5), (0.5, 0.99), (1.0, 1.0)):
        counts = _counts(cat, det_t, label_t)
        # the person's label counts with all its detections, whatever the thresholds
        assert counts[("Noctuidae sp. A", "morphospecies")] == (1, 1, 6), (det_t, label_t)
        # the rejected one counts nowhere; moth-c follows the thresholds
        assert sum(v[0] for v in counts.values()) == (2 if det_t <= 0.9 else 1)
        per_night = count_individuals_per_night(db, ExportScope.of(), cat.pipeline_id,
                                                Thresholds(det_t, label_t))
        assert sum(n.individuals for n in per_night.values()) == sum(v[0] for v in counts.values())
    assert _counts(cat, 0.5, 0.95)[(None, None)][0] == 1  # moth-c unidentified at 0.95


def test_merge_split_and_move_are_undoable_track_corrections(night):
    cat, db = night, night.db
    ids = _by_identity(cat)
    a, b, c = ids["moth-a"], ids["moth-b"], ids["moth-c"]
    start = _state(db)
    out = review_store.merge(db, a, [b], ME)
    assert out.occurrence_ids == (a, b)
    assert _occ(db, a).n_detections == 12 and _occ(db, b).merged_into == a
    assert _occ(db, b).n_detections == 0
    with pytest.raises(UserInputError, match="merged into occurrence"):
        review_store.confirm(db, [b], ME)
    frames = review_queries.frame_detections(db, c)
    out = review_store.split(db, c, frames[3], ME)
    (new,) = out.created_ids
    assert _occ(db, c).n_detections == 3 and _occ(db, new).n_detections == 3
    assert _occ(db, new).created_by == "human" and _occ(db, new).pinned
    with pytest.raises(UserInputError, match="first frame"):
        review_store.split(db, c, frames[0], ME)
    review_store.move_detection(db, frames[0], new, ME)
    assert _occ(db, c).n_detections == 2 and _occ(db, new).n_detections == 4
    assert _counts(cat)[("moth", "binary")][0] == 3  # a+b, c, the split-off part
    # re-tracking keeps the corrections (every touched occurrence is pinned)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    assert _occ(db, new).n_detections == 4 and _occ(db, a).n_detections == 12
    for _ in range(3):
        review_store.undo(db)
    assert _state(db)[1] == start[1]  # every detection where it was
    assert [o[:3] for o in _state(db)[0]] == [o[:3] for o in start[0]]


def test_bulk_confirm_of_one_label_above_a_score_is_one_undo(night):
    cat, db = night, night.db
    ids = _by_identity(cat)
    review_store.reject(db, [ids["moth-c"]], ME)
    out = review_store.confirm_label_above(db, cat.pipeline_id, cat.nights[N1], "moth", 0.5, ME)
    assert set(out.occurrence_ids) == {ids["moth-a"], ids["moth-b"]}
    none = review_store.confirm_label_above(db, cat.pipeline_id, cat.nights[N1], "moth", 0.5, ME)
    assert none.action_id is None and "No unreviewed occurrence" in none.summary
    review_store.undo(db)
    assert _occ(db, ids["moth-a"]).review_state is None
    assert _occ(db, ids["moth-c"]).review_state == "rejected"  # the earlier action stays


def test_a_catalogue_of_schema_6_migrates(tmp_path):
    old = tmp_path / "v6.sqlite3"
    con = sqlite3.connect(old)
    con.executescript((REPO / "tests" / "data" / "catalogue-v6.sql").read_text())
    con.execute("INSERT INTO deployments (id, path, name, created_at, kind, night_cutoff_hour) "
                "VALUES (1, '/traps/a', 'a', '2026-11-01 00:00:00', 'local', 12)")
    con.execute("INSERT INTO occurrences (id, pipeline_id, deployment_id, n_detections, fixture, "
                "fixture_reviewed, pinned, created_by, updated_at, label) "
                "VALUES (1, 1, 1, 0, 0, 0, 0, 'machine', 0, 'moth')")
    con.commit()
    con.close()
    db = open_database(old)
    try:
        assert db.schema_version() == LATEST_VERSION
        with db.session() as s:
            row = s.execute(select(Occurrence.label, Occurrence.review_state,
                                   Occurrence.merged_into)).one()
        assert tuple(row) == ("moth", None, None)
        assert review_queries.morphospecies(db) == [] and review_queries.history(db) == []
    finally:
        db.close()
    open_database(old).close()  # opens again: the migration ran once


def test_a_box_drawn_by_a_person_and_a_false_box_deleted(night):
    cat, db = night, night.db
    ids = _by_identity(cat)
    start = _state(db)
    with db.session() as s:
        image = s.execute(select(Image.id).order_by(Image.captured_at)).scalars().first()
        det_b = s.execute(select(Detection.id).where(Detection.occurrence_id == ids["moth-b"])
                          .order_by(Detection.id)).scalars().first()
    base = _counts(cat)[("moth", "binary")]
    # a missed insect in the first frame: a detection made by a person, a new individual
    out = review_store.add_box(db, image, cat.pipeline_id, (1500, 600, 1560, 660), ME)
    (new,) = out.created_ids
    with db.session() as s:
        det = s.execute(select(Detection).where(Detection.occurrence_id == new)).scalars().one()
    assert (det.detector, det.score, det.image_id) == ("human", 1.0, image)
    assert _occ(db, new).created_by == "human" and _occ(db, new).n_detections == 1
    counts = _counts(cat)
    assert counts[(None, None)] == (1, 0, 1)  # an individual nobody labelled yet
    # a false box: moth-b's first detection counts nowhere any more
    review_store.delete_box(db, det_b, ME)
    assert _counts(cat)[("moth", "binary")] == (base[0], 0, base[2] - 1)
    # re-tracking keeps both decisions
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    assert _counts(cat)[("moth", "binary")] == (base[0], 0, base[2] - 1)
    assert _counts(cat)[(None, None)] == (1, 0, 1)
    with pytest.raises(UserInputError, match="too small"):
        review_store.add_box(db, image, cat.pipeline_id, (5, 5, 6, 6), ME)
    with pytest.raises(UserInputError, match="Image 999999 is not in the catalogue"):
        review_store.add_box(db, 999_999, cat.pipeline_id, (1, 1, 50, 50), ME)
    # undo the box deletion and the box: back to the start, the drawn detection gone
    review_store.undo(db)
    review_store.undo(db)
    after = _state(db)
    assert after[1] == start[1] and [o[:3] for o in after[0]] == [o[:3] for o in start[0]]


def test_a_drawn_box_survives_processing_its_image_again(night):
    """Re-queueing an image for the same models replaces the machine's boxes, not a person's."""
    from trapgui.db import jobqueue

    cat, db = night, night.db
    with db.session() as s:
        image = s.execute(select(Image.id).order_by(Image.captured_at)).scalars().first()
    out = review_store.add_box(db, image, cat.pipeline_id, (1500, 600, 1560, 660), ME)
    (new,) = out.created_ids
    with db.session() as s:
        machine_before = s.execute(select(func.count()).select_from(Detection).where(
            Detection.image_id == image, Detection.detector != "human")).scalar()
    assert machine_before > 0
    jobqueue.enqueue(db, cat.pipeline_id, [image], requeue=True)
    with db.session() as s:
        kinds = s.execute(select(Detection.detector, Detection.occurrence_id).where(
            Detection.image_id == image)).all()
    assert kinds == [("human", new)]
