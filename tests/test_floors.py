"""Storage and classification floors: what a run stores and classifies, the on-demand job that
classifies the stored boxes below the classification floor, and where the floors are stated
(pipeline key, run record, export provenance). Real SQLite, real images, the real built-in
detector and small real classifiers (tests.pipeline_helpers)."""

from __future__ import annotations

import shutil
import threading

import pytest
from sqlalchemy import func, select

from tests.pipeline_helpers import binary_classifier, make_tiny_trap, species_classifier
from trapgui.core.jobs import BatchCommitted, ItemFailed, JobControl, RunProgress
from trapgui.db import unclassified
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.tables import Classification, Detection, ProcessingRun
from trapgui.export.about import build_about
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.pipeline.classify_below_floor import ClassifyBelowFloor
from trapgui.pipeline.engine import Engine
from trapgui.pipeline.model_set import ModelSet
from trapgui.pipeline.spec import PipelineSpec
from trapgui.scan.indexer import scan_folder

# the built-in detector scores these tiny images' boxes from ~0.5 to 1.0
STORE, CLASSIFY, LOWER = 0.6, 0.95, 0.8
CUT = -0.2  # darkness cut of the binary filter: splits these crops into moths and others


@pytest.fixture(scope="module")
def tiny_src(tmp_path_factory):
    return make_tiny_trap(tmp_path_factory.mktemp("tiny-floors"), side=320, limit=6,
                          folders=("vermont", "sequential"))


@pytest.fixture
def trap(tmp_path, tiny_src):
    return shutil.copytree(tiny_src, tmp_path / "trap")


def models(device):
    return ModelSet(BuiltinDetector(device=device), binary=binary_classifier(cut=CUT),
                    species=species_classifier())


def classifiers_only(device):
    return ModelSet(None, binary=binary_classifier(cut=CUT), species=species_classifier())


def spec(**kw) -> PipelineSpec:
    base = dict(binary="darkness_binary", species="tiny_species", detection_batch_size=2,
                classification_batch_size=8, loader_threads=1, storage_floor=STORE,
                classification_floor=CLASSIFY)
    base.update(kw)
    return PipelineSpec(**base)


def run(db, dep, s: PipelineSpec) -> Engine:
    engine = Engine(db, None, s, devices="cpu", model_loader=models)
    engine.enqueue_deployment(dep)
    summary = engine.run()
    assert summary.status == "finished" and summary.failed == 0
    return engine


def results(db, pipeline_id):
    """Per detection (image, box): score, binary label, best label, and every classification
    (model, label, score, top labels)."""
    with db.session() as s:
        dets = s.execute(select(Detection).where(Detection.pipeline_id == pipeline_id)).scalars().all()
        cls = {}
        for c in s.execute(select(Classification).join(
                Detection, Detection.id == Classification.detection_id).where(
                Detection.pipeline_id == pipeline_id)).scalars():
            cls.setdefault(c.detection_id, []).append((c.model, c.label, c.score, tuple(c.top_labels)))
    return {(d.image_id, round(d.x1, 3), round(d.y1, 3), round(d.x2, 3), round(d.y2, 3)):
            (d.score, d.binary_label, d.top_label, d.top_rank, sorted(cls.get(d.id, [])))
            for d in dets}


def label_counts(db, pipeline_id, threshold):
    with db.session() as s:
        return dict(s.execute(select(Detection.top_label, func.count()).where(
            Detection.pipeline_id == pipeline_id, Detection.score >= threshold)
            .group_by(Detection.top_label)).all())


def same_results(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        (sa, ba, ta, ra, ca), (sb, bb, tb, rb, cb) = a[key], b[key]
        assert sa == sb and ba == bb and ta == tb and ra == rb, key
        assert len(ca) == len(cb), key
        for x, y in zip(ca, cb):
            assert x[0] == y[0] and x[1] == y[1] and x[3] == y[3], key
            assert abs(x[2] - y[2]) < 1e-5, key  # other sub-batches: float rounding only


def test_floors_decide_what_is_stored_and_classified(db, trap):
    dep = scan_folder(db, trap).deployment_id
    engine = run(db, dep, spec())
    found = results(db, engine.pipeline_id)
    assert found
    scores = [v[0] for v in found.values()]
    assert min(scores) >= STORE
    classified = [v for v in found.values() if v[0] >= CLASSIFY]
    waiting = [v for v in found.values() if v[0] < CLASSIFY]
    assert classified and waiting  # both kinds exist on these images
    assert all(v[1] in ("moth", "nonmoth") and v[4] for v in classified)
    assert any(v[3] == "species" for v in classified) and any(v[1] == "nonmoth" for v in classified)
    assert all(v[1] is None and v[2] is None and v[3] is None and not v[4] for v in waiting)
    # a run with no floors stores boxes below 0.6 too: the storage floor dropped them
    everything = run(db, dep, spec(storage_floor=0.0, classification_floor=0.0))
    assert min(v[0] for v in results(db, everything.pipeline_id).values()) < STORE


def test_the_floors_are_part_of_the_configuration_and_the_run_record(db, trap):
    base = spec()
    assert spec(storage_floor=0.5).key != base.key != spec(classification_floor=0.9).key
    assert spec(detection_batch_size=7, classification_batch_size=3).key == base.key
    # a classification floor below the storage floor is the same behaviour as equal floors
    assert spec(classification_floor=0.1).key == spec(classification_floor=STORE).key
    assert spec(classification_floor=0.1).classification_floor == STORE
    # catalogue defaults per detector (read from resources/models.json)
    mobilenet = PipelineSpec(detector="fasterrcnn_mobilenet_v3_2023", binary="x")
    assert (mobilenet.storage_floor, mobilenet.classification_floor) == (0.1, 0.5)
    resnet = PipelineSpec(detector="fasterrcnn_resnet50_2023", binary="x")
    assert (resnet.storage_floor, resnet.classification_floor) == (0.2, 0.5)
    builtin = PipelineSpec(binary="x")
    assert (builtin.storage_floor, builtin.classification_floor) == (0.2, 0.2)
    dep = scan_folder(db, trap).deployment_id
    engine = run(db, dep, base)
    with db.session() as s:
        run_row = s.execute(select(ProcessingRun)).scalar_one()
    assert run_row.settings["storage_floor"] == STORE
    assert run_row.settings["classification_floor"] == CLASSIFY
    sizes = run_row.settings["batch_sizes"]["cpu"]
    assert sizes["detection"] == 2 and sizes["classification"] == {"darkness_binary": 8,
                                                                   "tiny_species": 8}
    assert run_row.devices[0]["batch_sizes"] == sizes
    config = unclassified.pipeline_config(db, engine.pipeline_id)
    assert unclassified.floors_of(config) == (STORE, CLASSIFY)


def test_classifying_below_the_floor_on_demand_matches_a_run_with_that_floor(db, trap):
    dep = scan_folder(db, trap).deployment_id
    engine = run(db, dep, spec())
    reference = run(db, dep, spec(classification_floor=LOWER))
    pid = engine.pipeline_id
    before = unclassified.coverage(db, pid, LOWER)
    assert before.below_classification_floor and before.unclassified > 0
    assert unclassified.coverage(db, pid, CLASSIFY).unclassified == 0
    assert not unclassified.coverage(db, pid, CLASSIFY).below_classification_floor
    assert label_counts(db, pid, LOWER) != label_counts(db, reference.pipeline_id, LOWER)

    events, lock = [], threading.Lock()

    def emit(event):
        with lock:
            events.append(event)

    job = ClassifyBelowFloor(db, None, pid, LOWER, devices="cpu",
                             model_loader=classifiers_only, batch_images=2)
    summary = job(emit, JobControl())
    assert summary.status == "finished" and summary.remaining == 0
    assert summary.classified == before.unclassified and summary.failed_images == 0
    assert unclassified.coverage(db, pid, LOWER).unclassified == 0
    # boxes between the storage floor and the new threshold are still waiting
    assert unclassified.coverage(db, pid, STORE).unclassified > 0
    # exactly what a run with the lower classification floor stored
    lowered = {k: v for k, v in results(db, pid).items() if v[0] >= LOWER}
    wanted = {k: v for k, v in results(db, reference.pipeline_id).items() if v[0] >= LOWER}
    same_results(lowered, wanted)
    assert label_counts(db, pid, LOWER) == label_counts(db, reference.pipeline_id, LOWER)
    progress = [e for e in events if isinstance(e, RunProgress)]
    assert progress and progress[-1].detections == summary.classified
    assert progress[-1].done == progress[-1].total
    # the job is recorded and the exports list it, with both floors
    about = build_about(db, "detections", ExportScope(), pid, Thresholds(detection=LOWER),
                        counts_individuals=False)
    assert about["floors"]["storage_floor"] == STORE
    assert about["floors"]["classification_floor"] == CLASSIFY
    assert about["floors"]["unclassified_detections"] == 0
    assert [j["settings"]["min_score"] for j in about["classification_jobs"]] == [LOWER]
    assert all(r["settings"].get("task") is None for r in about["processing_runs"])
    assert about["pipeline"]["config"]["classification_floor"] == CLASSIFY
    # again: nothing left to do, nothing written twice
    again = ClassifyBelowFloor(db, None, pid, LOWER, devices="cpu",
                               model_loader=classifiers_only)()
    assert again.status == "nothing to do" and again.classified == 0
    same_results({k: v for k, v in results(db, pid).items() if v[0] >= LOWER}, wanted)


def test_the_job_can_be_cancelled_and_finished_later_and_skips_unreadable_images(db, trap):
    dep = scan_folder(db, trap).deployment_id
    engine = run(db, dep, spec())
    pid = engine.pipeline_id
    todo = unclassified.coverage(db, pid, STORE).unclassified
    assert todo > 0
    about = build_about(db, "detections", ExportScope(), pid, Thresholds(detection=STORE),
                        counts_individuals=False)
    assert about["floors"]["unclassified_detections"] == todo
    assert "not classified yet" in about["floors"]["meaning"]

    cancelled = JobControl()
    cancelled.cancel()
    first = ClassifyBelowFloor(db, None, pid, STORE, devices="cpu",
                               model_loader=classifiers_only)(None, cancelled)
    assert first.status == "cancelled" and first.classified == 0 and first.remaining == todo

    control = JobControl()

    def cancel_after_first_batch(event):
        if isinstance(event, BatchCommitted):
            control.cancel()

    partial = ClassifyBelowFloor(db, None, pid, STORE, devices="cpu",
                                 model_loader=classifiers_only, batch_images=1)(
        cancel_after_first_batch, control)
    assert partial.status == "cancelled" and 0 < partial.classified < todo
    assert partial.remaining == todo - partial.classified

    # one image with boxes left to classify disappears: it is reported, the rest goes on
    with db.session() as s:
        image_id = s.execute(select(Detection.image_id).where(
            Detection.pipeline_id == pid, Detection.top_rank.is_(None))
            .order_by(Detection.image_id.desc()).limit(1)).scalar_one()
        lost = s.execute(select(func.count()).select_from(Detection).where(
            Detection.image_id == image_id, Detection.pipeline_id == pid,
            Detection.top_rank.is_(None))).scalar_one()
    from trapgui.db.tables import Image

    with db.session() as s:
        rel = s.get(Image, image_id).rel_path
    (trap / rel).unlink()
    failures = []
    rest = ClassifyBelowFloor(db, None, pid, STORE, devices="cpu",
                              model_loader=classifiers_only)(
        lambda e: failures.append(e) if isinstance(e, ItemFailed) else None, JobControl())
    assert rest.status == "finished" and rest.failed_images == 1
    assert rest.classified == partial.remaining - lost and rest.remaining == lost
    assert len(failures) == 1 and failures[0].item_id == image_id
    assert "no longer exists" in failures[0].reason


def test_a_pipeline_without_classifiers_has_nothing_to_classify(db, trap):
    dep = scan_folder(db, trap).deployment_id
    s = PipelineSpec(detection_batch_size=2, loader_threads=1, storage_floor=STORE,
                     classification_floor=CLASSIFY)
    assert s.classification_floor == STORE  # canonical: nothing is ever classified
    engine = Engine(db, None, s, devices="cpu",
                    model_loader=lambda device: ModelSet(BuiltinDetector(device=device)))
    engine.enqueue_deployment(dep)
    assert engine.run().status == "finished"
    cover = unclassified.coverage(db, engine.pipeline_id, 0.0)
    assert cover.unclassified == 0 and not cover.below_classification_floor
    assert cover.below_storage_floor
    summary = ClassifyBelowFloor(db, None, engine.pipeline_id, 0.0, devices="cpu",
                                 model_loader=classifiers_only)()
    assert summary.status == "nothing to do"
