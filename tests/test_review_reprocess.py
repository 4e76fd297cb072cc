"""A person's decisions survive their images being processed again with the same model
configuration (issue 14, "Human work survives"): a machine box deleted as not an insect stays
deleted, a confirmed or relabelled occurrence keeps its decision on the new boxes of the same
insect, whatever replaced the results: ``trapgui process --requeue``, a rescan of a changed
file, a remote task's results. Real parts: the built-in detector on downscaled shared
photographs, the real CLI and engine, a real SQLite catalogue, the real counting query.

The rule (docs/review.md, "Processed again"): when an image's machine results are replaced, a
new machine box is the same box as an old one that a person's decision holds when it lies on
the same image and their IoU is the largest and at least 0.5 (``core.box_match``, the matcher
decisions are carried with); it takes the old box's place (its id, its occurrence), so the
decision, the review log and undo go on naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.image_files import save_downscaled
from tests.pipeline_helpers import SHARED_IMAGES
from trapgui.core.geometry import Box
from trapgui.core.types import DetectionResult, ImageResult
from trapgui.db import jobqueue, review_store
from trapgui.db.tables import Detection, Image, Occurrence, ReviewAction

SEQUENTIAL = SHARED_IMAGES / "sequential"
SIDE = 512
ME = "A. Reviewer"
pytestmark = pytest.mark.skipif(not SEQUENTIAL.is_dir(), reason="../shared trap images missing")


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("seq-frames")
    for src in sorted(SEQUENTIAL.glob("*.jpg")):
        save_downscaled(src, dst / src.name, SIDE, keep_mtime=True)
    return dst


@pytest.fixture
def trap(tmp_path, frames) -> Path:
    import shutil

    return Path(shutil.copytree(frames, tmp_path / "seq"))


def _cli(capsys, *argv) -> str:
    from trapgui.cli.main import run_cli

    code = run_cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, (argv, out, err)
    return out


def _nights(capsys, db_path) -> dict[str, str]:
    """The one night's row of ``trapgui nights`` (column -> cell)."""
    lines = _cli(capsys, "--db", db_path, "nights").splitlines()
    header = lines[0].split()
    (row,) = [line for line in lines[1:] if line.strip()]
    cells = row.split()
    cells = cells[:2] + [" ".join(cells[2:4]), " ".join(cells[4:6])] + cells[6:]
    return {h: c for h, c in zip(header, cells) if h not in ("FIRST", "LAST")}


def _occ(db, occ_id):
    with db.session() as s:
        return s.execute(select(Occurrence).where(Occurrence.id == occ_id)).scalars().one()


def _det(db, det_id):
    with db.session() as s:
        return s.execute(select(Detection).where(Detection.id == det_id)).scalars().first()


def _members(db, occ_id) -> list[tuple[int, int]]:
    with db.session() as s:
        return sorted(tuple(r) for r in s.execute(select(Detection.id, Detection.image_id)
                                                  .where(Detection.occurrence_id == occ_id)))


def _counted_singleton(db) -> tuple[int, int]:
    """(occurrence, its detection) of an individual seen once at a score of at least 0.5."""
    with db.session() as s:
        rows = s.execute(select(Occurrence.id, Detection.id, Detection.score)
                         .join(Detection, Detection.occurrence_id == Occurrence.id)
                         .where(Occurrence.n_detections == 1, Occurrence.fixture.is_(False))
                         .order_by(Detection.score.desc())).all()
    assert rows and rows[0][2] >= 0.5, rows
    return rows[0][0], rows[0][1]


def _long_tracks(db, n: int) -> list[int]:
    with db.session() as s:
        return list(s.execute(select(Occurrence.id).where(Occurrence.n_detections >= 4,
                                                          Occurrence.fixture.is_(False))
                              .order_by(Occurrence.id).limit(n)).scalars())


def test_a_deleted_box_and_a_label_survive_process_requeue_and_undo_restores(trap, tmp_path,
                                                                              capsys):
    from trapgui.db import open_database

    db_path = tmp_path / "c.sqlite3"
    process = ("--db", db_path, "process", trap, "--classifier", "none", "--device", "cpu",
               "--quiet")
    _cli(capsys, *process)
    before = _nights(capsys, db_path)
    db = open_database(db_path)
    try:
        occ_gone, det_gone = _counted_singleton(db)
        (labelled,) = _long_tracks(db, 1)
        track_before = _members(db, labelled)
    finally:
        db.close()
    _cli(capsys, "--db", db_path, "review", "delete-box", det_gone, "--by", ME)
    _cli(capsys, "--db", db_path, "review", "set", labelled, "--label", "Noctuidae sp. A",
         "--by", ME)
    reviewed = _nights(capsys, db_path)
    assert int(reviewed["DETECTIONS"]) == int(before["DETECTIONS"]) - 1
    assert int(reviewed["INDIVIDUALS"]) == int(before["INDIVIDUALS"]) - 1

    out = _cli(capsys, *process, "--requeue")
    assert "5 images done" in out
    after = _nights(capsys, db_path)
    assert after == reviewed, (reviewed, after)
    db = open_database(db_path)
    try:
        det = _det(db, det_gone)
        assert det is not None and det.detector == "builtin", "the same box, processed again"
        holder = _occ(db, det.occurrence_id)
        assert (holder.review_state, holder.identified_by) == ("rejected", ME)
        row = _occ(db, labelled)
        assert (row.review_state, row.review_label, row.identified_by) == \
            ("relabelled", "Noctuidae sp. A", ME)
        assert _members(db, labelled) == track_before
        with db.session() as s:
            assert s.execute(select(func.count()).select_from(ReviewAction)
                             .where(ReviewAction.undone.is_(False))).scalar() == 2
    finally:
        db.close()

    # the review log still names the box: undo puts it back where it was, and it counts
    _cli(capsys, "--db", db_path, "review", "undo")
    _cli(capsys, "--db", db_path, "review", "undo")
    assert _nights(capsys, db_path) == before
    db = open_database(db_path)
    try:
        assert _det(db, det_gone).occurrence_id == occ_gone
        assert _occ(db, labelled).review_state is None
    finally:
        db.close()


def test_a_rescan_of_a_changed_file_keeps_the_deleted_box_deleted(trap, tmp_path, capsys):
    from trapgui.db import open_database

    db_path = tmp_path / "c.sqlite3"
    process = ("--db", db_path, "process", trap, "--classifier", "none", "--device", "cpu",
               "--quiet")
    _cli(capsys, *process)
    db = open_database(db_path)
    try:
        _, det_gone = _counted_singleton(db)
        with db.session() as s:
            image = s.execute(select(Detection.image_id).where(Detection.id == det_gone)).scalar()
            name = s.execute(select(Image.rel_path).where(Image.id == image)).scalar()
    finally:
        db.close()
    _cli(capsys, "--db", db_path, "review", "delete-box", det_gone, "--by", ME)
    reviewed = _nights(capsys, db_path)
    # the file changes on disk (same pixels, a new time): a rescan queues it again
    st = (trap / name).stat()
    os.utime(trap / name, (st.st_atime, st.st_mtime + 60))
    out = _cli(capsys, *process)
    assert "1 images done" in out or "1 image done" in out, out
    assert _nights(capsys, db_path) == reviewed
    db = open_database(db_path)
    try:
        det = _det(db, det_gone)
        assert det is not None and _occ(db, det.occurrence_id).review_state == "rejected"
    finally:
        db.close()


def test_a_confirmed_occurrence_stays_confirmed_after_the_engine_processes_its_night_again(
        trap, db):
    """Through the engine with a real (tiny, deterministic) moth / non-moth classifier, so the
    occurrence has a machine label to confirm."""
    from tests.pipeline_helpers import binary_classifier
    from trapgui.core.jobs import JobControl
    from trapgui.db.counts import count_individuals
    from trapgui.db.export_queries import ExportScope, Thresholds
    from trapgui.ml.builtin_detector import BuiltinDetector
    from trapgui.pipeline.engine import Engine
    from trapgui.pipeline.model_set import ModelSet
    from trapgui.pipeline.spec import PipelineSpec
    from trapgui.scan.indexer import scan_folder

    dep = scan_folder(db, trap).deployment_id
    engine = Engine(db, None, PipelineSpec(binary="darkness_binary", detection_batch_size=1,
                                           classification_batch_size=16, loader_threads=1),
                    devices="cpu", model_loader=lambda device: ModelSet(
                        BuiltinDetector(device=device), binary=binary_classifier()))
    engine.enqueue_deployment(dep)
    assert engine.run(lambda e: None, JobControl()).status == "finished"
    pid = engine.pipeline_id
    confirmed, relabelled = _long_tracks(db, 2)
    label = _occ(db, confirmed).label
    assert label is not None
    review_store.confirm(db, [confirmed], ME)
    review_store.relabel(db, [relabelled], "Noctua pronuba", "species", ME)
    tracks = {o: _members(db, o) for o in (confirmed, relabelled)}

    def counts():
        return sorted((c.label, c.individuals, c.human_identified, c.detections)
                      for c in count_individuals(db, ExportScope.of(), pid, Thresholds(0.5, 0.5)))

    reviewed = counts()
    assert engine.enqueue_deployment(dep, requeue=True) == 5
    assert engine.run(lambda e: None, JobControl()).status == "finished"
    row = _occ(db, confirmed)
    assert (row.review_state, row.review_label, row.identified_by, row.pinned) == \
        ("confirmed", label, ME, True)
    assert (_occ(db, relabelled).review_state, _occ(db, relabelled).review_label) == \
        ("relabelled", "Noctua pronuba")
    assert {o: _members(db, o) for o in tracks} == tracks
    assert counts() == reviewed


# ---- the rule, on one image (a remote task's results replace it) ------------------------------
def _write(db, pid, image_id, boxes):
    with db.write_session() as s:
        jobqueue.record_results(s, pid, None, [ImageResult(image_id, [
            DetectionResult(Box(*b), 0.9, "builtin", []) for b in boxes])])


def _one_image_night(db, tmp_path):
    from trapgui.pipeline.tracking_job import track_catalogue_nights
    from trapgui.scan.indexer import scan_folder
    from tests.image_files import make_jpeg

    folder = tmp_path / "one"
    make_jpeg(folder / "20220728232239-00-69.jpg", size=(400, 300))
    dep = scan_folder(db, folder).deployment_id
    pid = jobqueue.get_or_create_pipeline(db, "k" * 64, "builtin", {"detector": "builtin"})
    with db.session() as s:
        image, night = s.execute(select(Image.id, Image.night_id)
                                 .where(Image.deployment_id == dep)).one()
    _write(db, pid, image, [(10, 10, 50, 50), (100, 100, 140, 140), (200, 200, 240, 240)])
    track_catalogue_nights(db, pid, [night])
    with db.session() as s:
        ids = dict(s.execute(select(Detection.x1, Detection.id)
                             .where(Detection.image_id == image)).all())
    return pid, image, night, ids


def test_the_same_box_is_the_largest_iou_of_at_least_one_half_one_to_one(db, tmp_path):
    from trapgui.pipeline.tracking_job import track_catalogue_nights

    pid, image, night, ids = _one_image_night(db, tmp_path)
    review_store.delete_box(db, ids[10], ME)
    (second,) = review_store.delete_box(db, ids[200], ME).created_ids
    # processed again: the first box moved a little (IoU 0.68), two candidates for it, the
    # second box is gone (IoU below 0.5 with anything), the machine box in between is new
    _write(db, pid, image, [(14, 14, 54, 54), (12, 12, 52, 52), (100, 100, 140, 140),
                            (225, 225, 265, 265)])
    track_catalogue_nights(db, pid, [night])
    first = _det(db, ids[10])
    assert first is not None and (first.x1, first.y1) == (12, 12)  # the larger IoU took it
    assert _occ(db, first.occurrence_id).review_state == "rejected"
    assert _members(db, second) == []  # its box was not found again: nothing to hold
    assert _occ(db, second).n_detections == 0
    with db.session() as s:
        machine = s.execute(select(Detection.x1, Occurrence.review_state)
                            .join(Occurrence, Occurrence.id == Detection.occurrence_id)
                            .where(Detection.image_id == image)
                            .order_by(Detection.x1)).all()
    assert machine == [(12.0, "rejected"), (14.0, None), (100.0, None), (225.0, None)]
    # undo both deletions: the first box returns to the individual it was deleted from, the
    # second has no box left to return
    review_store.undo(db)
    review_store.undo(db)
    track_catalogue_nights(db, pid, [night])
    with db.session() as s:
        states = s.execute(select(Occurrence.review_state).join(
            Detection, Detection.occurrence_id == Occurrence.id)
            .where(Detection.image_id == image)).scalars().all()
    assert states == [None] * 4
