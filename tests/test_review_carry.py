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
from trapgui.db.catalogue_queries import nights_table
from trapgui.db.counts import count_individuals
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
    frame) -> str`` names the appearance each box gets (the same name, the same look), so a
    test makes B's tracker split one insect or join two. The truth of B's detections is kept
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
