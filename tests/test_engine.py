"""The engine on a real SQLite file with real images and real models: end to end, pause /
resume / cancel, failures, and two workers sharing one queue."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from tests.pipeline_helpers import FailOnCallClassifier, binary_classifier, info, make_tiny_trap
from trapgui.core.types import Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Detection, Image, Job, ProcessingRun
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.pipeline.engine import Engine
from trapgui.core.jobs import (BatchCommitted, Finished, ItemFailed, JobControl, LogLine,
                               RunProgress, run_job)
from trapgui.pipeline.model_set import ModelSet
from trapgui.pipeline.spec import PipelineSpec
from trapgui.scan.indexer import scan_folder

SIDE = 256


@pytest.fixture(scope="module")
def tiny_trap_src(tmp_path_factory):
    return make_tiny_trap(tmp_path_factory.mktemp("tiny-engine"), side=SIDE, limit=8,
                          folders=("vermont", "sequential"))


@pytest.fixture
def trap(tmp_path, tiny_trap_src):
    import shutil

    return shutil.copytree(tiny_trap_src, tmp_path / "trap")


def _scan(db, folder) -> int:
    return scan_folder(db, folder).deployment_id


def tiny_models(binary_factory=binary_classifier):
    def load(device):
        return ModelSet(BuiltinDetector(device=device), binary=binary_factory())
    return load


class Recorder:
    """A thread-safe event consumer (events arrive from worker and writer threads)."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()
        self.hooks = []

    def __call__(self, event):
        with self.lock:
            self.events.append(event)
        for hook in self.hooks:
            hook(event)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def _spec(**kw):
    base = dict(binary="darkness_binary", detection_batch_size=1, classification_batch_size=16,
                loader_threads=1)
    base.update(kw)
    return PipelineSpec(**base)


def _exactly_once(db, pipeline_id):
    """Every job done or failed, none twice, and each image's detections from a single run."""
    with db.session() as s:
        states = dict(s.execute(select(Job.state, func.count()).where(
            Job.pipeline_id == pipeline_id).group_by(Job.state)).all())
        runs_per_image = s.execute(select(Detection.image_id, func.count(Detection.run_id.distinct()))
                                   .where(Detection.pipeline_id == pipeline_id)
                                   .group_by(Detection.image_id)).all()
        dupes = s.execute(select(func.count()).select_from(
            select(Detection.image_id, Detection.x1, Detection.y1, Detection.x2, Detection.y2)
            .where(Detection.pipeline_id == pipeline_id)
            .group_by(Detection.image_id, Detection.x1, Detection.y1, Detection.x2, Detection.y2)
            .having(func.count() > 1).subquery())).scalar()
    assert set(states) <= {"done", "failed"}, states
    assert all(n == 1 for _, n in runs_per_image)
    assert dupes == 0
    return states


def test_end_to_end_with_builtin_detector_and_resnet50_binary(db, tmp_path, tiny_trap_src):
    """The catalogue's loader: built-in detector + published moth/non-moth ResNet-50 (random
    weights in the published format, installed in a real model store)."""
    import shutil

    from trapgui.ml.registry import install_random_weights
    from trapgui.ml.store import ModelStore

    folder = tmp_path / "three"
    folder.mkdir()
    for src in sorted(tiny_trap_src.glob("*.jpg"))[:3]:
        shutil.copy2(src, folder / src.name)
    store = ModelStore(tmp_path / "models")
    install_random_weights(store, "moth_binary_resnet50_2024")
    spec = PipelineSpec(binary="moth_binary_resnet50_2024", detection_batch_size=2,
                        classification_batch_size=32, loader_threads=2)
    engine = Engine(db, store, spec, devices="cpu")
    assert engine.enqueue_deployment(_scan(db, folder)) == 3
    rec = Recorder()
    summary = run_job(engine.job(), rec)
    assert summary.status == "finished" and summary.done == 3 and summary.failed == 0
    assert summary.remaining == 0 and summary.detections > 0
    with db.session() as s:
        dets = s.execute(select(Detection)).scalars().all()
        run = s.execute(select(ProcessingRun)).scalar_one()
        images = {i.id: (i.width, i.height) for i in s.execute(select(Image)).scalars()}
    assert len(dets) == summary.detections
    assert all(d.binary_label in ("moth", "nonmoth") and d.top_rank == "binary" for d in dets)
    assert all(0 <= d.x1 < d.x2 <= images[d.image_id][0] and 0 <= d.y1 < d.y2 <= images[d.image_id][1]
               for d in dets)
    assert run.status == "finished" and run.images_done == 3 and run.ended_at is not None
    assert set(run.models) == {"builtin", "moth_binary_resnet50_2024"}
    assert run.devices[0]["device"] == "cpu" and run.settings["detection_batch_size"] == 2
    last = rec.of(RunProgress)[-1]
    assert (last.done, last.total, last.detections) == (3, 3, summary.detections)
    assert sorted(i for b in rec.of(BatchCommitted) for i in b.image_ids) == sorted(images)
    assert isinstance(rec.events[-1], Finished)
    # nothing left: a second run does nothing, results untouched
    again = Engine(db, store, spec, devices="cpu").run()
    assert again.done == 0 and again.status == "finished"
    _exactly_once(db, engine.pipeline_id)


def test_pipeline_key_changes_only_with_what_changes_results(db):
    a = Engine(db, None, _spec(), model_loader=tiny_models())
    b = Engine(db, None, _spec(detection_batch_size=8, loader_threads=3), model_loader=tiny_models())
    c = Engine(db, None, _spec(top_k=2), model_loader=tiny_models())
    assert a.pipeline_id == b.pipeline_id != c.pipeline_id
    assert len(a.pipeline_key) == 64


def test_pause_resume_then_cancel_and_a_second_run_finishes_the_rest_once(db, trap):
    dep = _scan(db, trap)
    engine = Engine(db, None, _spec(), devices="cpu", model_loader=tiny_models())
    total = engine.enqueue_deployment(dep)
    rec = Recorder()
    control = JobControl()
    paused_counts = {}

    def operate():
        # pause after the first commit; while paused no new batch starts
        while len(rec.of(BatchCommitted)) < 1:
            time.sleep(0.05)
        control.pause()
        # the batch in hand is finished first: wait (however slow the machine) until the
        # worker says it is paused, and give the writer time to commit that last batch
        while not any(p.devices and p.devices[0].state == "paused"
                      for p in rec.of(RunProgress)):
            time.sleep(0.05)
        time.sleep(3.0)
        stable = len(rec.of(BatchCommitted))
        paused_counts["during"] = stable
        time.sleep(2.0)
        paused_counts["after"] = len(rec.of(BatchCommitted))
        paused_counts["state"] = rec.of(RunProgress)[-1].devices[0].state
        control.resume()
        while len(rec.of(BatchCommitted)) < stable + 1:
            time.sleep(0.05)
        control.cancel()

    t = threading.Thread(target=operate)
    t.start()
    summary = engine.run(rec, control)
    t.join()
    assert paused_counts["during"] == paused_counts["after"]
    assert paused_counts["state"] == "paused"
    assert summary.status == "cancelled"
    first_done = summary.done
    assert 2 <= first_done < total and summary.remaining == total - first_done
    counts = jobqueue.counts(db, engine.pipeline_id)
    assert counts["claimed"] == 0 and counts["done"] == first_done
    with db.session() as s:
        first_images = set(s.execute(select(Job.image_id).where(Job.state == "done")).scalars())
    second = Engine(db, None, _spec(), devices="cpu", model_loader=tiny_models()).run()
    assert second.status == "finished" and second.done == total - first_done
    assert _exactly_once(db, engine.pipeline_id) == {"done": total}
    with db.session() as s:
        by_run = dict(s.execute(select(Job.image_id, Job.run_id)).all())
    assert {by_run[i] for i in first_images} == {summary.run_id}  # not processed again


def test_corrupt_image_mid_batch_fails_alone_with_a_reason(db, trap):
    dep = _scan(db, trap)
    victim = sorted(trap.glob("*.jpg"))[1]
    victim.write_bytes(victim.read_bytes()[:2000])  # truncated after it was scanned
    engine = Engine(db, None, _spec(detection_batch_size=3), devices="cpu",
                    model_loader=tiny_models())
    total = engine.enqueue_deployment(dep)
    rec = Recorder()
    control = JobControl()
    summary = engine.run(rec, control)
    assert summary.status == "finished" and summary.failed == 1 and summary.done == total - 1
    failed = rec.of(ItemFailed)
    assert len(failed) == 1 and failed[0].name.endswith(victim.name)
    assert failed[0].reason.startswith("Unreadable image")
    with db.session() as s:
        job = s.execute(select(Job).where(Job.state == "failed")).scalar_one()
        assert job.error == failed[0].reason
        assert s.execute(select(func.count()).select_from(Detection).where(
            Detection.image_id == job.image_id)).scalar() == 0
    _exactly_once(db, engine.pipeline_id)


def test_an_exception_in_one_batch_fails_only_that_batch(db, trap):
    dep = _scan(db, trap)

    def failing():
        return FailOnCallClassifier(info("darkness_binary", Rank.BINARY, ["moth", "nonmoth"],
                                         positive=("moth",)), binary_classifier().model,
                                    fail_calls=(2,))

    engine = Engine(db, None, _spec(detection_batch_size=2, classification_batch_size=500),
                    devices="cpu", model_loader=tiny_models(failing))
    total = engine.enqueue_deployment(dep)
    rec = Recorder()
    control = JobControl()
    summary = engine.run(rec, control)
    assert summary.status == "finished"
    assert summary.failed == 2 and summary.done == total - 2
    reasons = {e.reason for e in rec.of(ItemFailed)}
    assert len(reasons) == 1 and "simulated device failure" in reasons.pop()
    assert any(e.level == "warning" and "run goes on" in e.message for e in rec.of(LogLine))
    _exactly_once(db, engine.pipeline_id)


def test_two_workers_share_the_queue_and_never_process_the_same_image(db, trap):
    dep = _scan(db, trap)
    started = []

    def factory(name, target):
        started.append(name)
        return threading.Thread(target=target, name=name)

    engine = Engine(db, None, _spec(), devices=["cpu", "cpu"], thread_factory=factory,
                    model_loader=tiny_models())
    total = engine.enqueue_deployment(dep)
    rec = Recorder()
    control = JobControl()
    summary = engine.run(rec, control)
    assert started == ["trapgui-cpu", "trapgui-cpu#2"]
    assert summary.status == "finished" and summary.done == total
    committed = [i for b in rec.of(BatchCommitted) for i in b.image_ids]
    assert len(committed) == len(set(committed)) == total
    by_device = {}
    for b in rec.of(BatchCommitted):
        by_device.setdefault(b.device, set()).update(b.image_ids)
    assert set(by_device) == {"cpu", "cpu#2"}  # both did work
    assert not by_device["cpu"] & by_device["cpu#2"]
    with db.session() as s:
        attempts = s.execute(select(Job.attempts)).scalars().all()
    assert attempts == [0] * total  # nothing crashed: no image is under suspicion
    assert sum(d.images_done for d in summary.devices) == total
    _exactly_once(db, engine.pipeline_id)


def test_event_consumer_errors_do_not_stop_the_run(db, trap):
    dep = _scan(db, trap)
    engine = Engine(db, None, _spec(detection_batch_size=4), devices="cpu",
                    model_loader=tiny_models())
    engine.enqueue_deployment(dep)

    def broken(event):
        raise ValueError("consumer bug")

    summary = engine.run(broken)
    assert summary.status == "finished" and summary.failed == 0


def test_process_command_scans_processes_and_exports(tmp_path, tiny_trap_src, capsys):
    import csv
    import shutil

    from trapgui.cli.main import run_cli

    folder = tmp_path / "two"
    folder.mkdir()
    for src in sorted(tiny_trap_src.glob("*.jpg"))[:2]:
        shutil.copy2(src, folder / src.name)
    db_path, out = tmp_path / "cat.sqlite3", tmp_path / "out.csv"
    # a model asked for on the command line but not installed: a clear stop
    assert run_cli(["--db", str(db_path), "process", str(folder), "--classifier",
                    "moth_binary_resnet50_2024"]) == 4
    err = capsys.readouterr().err
    assert "trapgui models download moth_binary_resnet50_2024" in err
    rc = run_cli(["--db", str(db_path), "process", str(folder), "--classifier", "none",
                  "--device", "cpu", "--batch-size", "2", "--export", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "finished: 2 images done, 0 failed" in text.out
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["detector_model"] for r in rows} == {"Built-in sheet detector (no weights)"}
    # again: nothing new to do
    assert run_cli(["--db", str(db_path), "process", str(folder), "--classifier", "none",
                    "--device", "cpu"]) == 0
    assert "0 images newly queued" in capsys.readouterr().out


def test_fresh_install_processes_offline_with_the_default_settings(tmp_path, tiny_trap_src,
                                                                   capsys):
    """The default settings name the moth/non-moth model, which a new computer does not have:
    `trapgui process FOLDER` still works (built-in detector) and says what it left out."""
    import shutil

    from trapgui.cli.main import run_cli

    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy2(sorted(tiny_trap_src.glob("*.jpg"))[0], folder)
    rc = run_cli(["--db", str(tmp_path / "c.sqlite3"), "process", str(folder), "--device", "cpu"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "trapgui models download moth_binary_resnet50_2024" in out.err
    assert "finished: 1 images done" in out.out or "finished: 1 image" in out.out


def test_process_only_touches_the_folder_it_was_given(tmp_path, tiny_trap_src, capsys):
    """Another trap queued with the same models stays queued: progress, totals and the run
    cover FOLDER only."""
    import shutil

    from sqlalchemy import select

    from trapgui.cli.main import run_cli
    from trapgui.db import open_database
    from trapgui.db.tables import Image, Job
    from trapgui.ml.store import ModelStore
    from trapgui.pipeline.engine import Engine
    from trapgui.pipeline.spec import PipelineSpec

    srcs = sorted(tiny_trap_src.glob("*.jpg"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy2(srcs[0], a)
    shutil.copy2(srcs[1], b)
    db_path = tmp_path / "c.sqlite3"
    db = open_database(db_path)
    dep_b = _scan(db, b)
    Engine(db, ModelStore(tmp_path / "models"), PipelineSpec(detector="builtin"),
           devices="cpu").enqueue_deployment(dep_b)
    db.close()
    assert run_cli(["--db", str(db_path), "process", str(a), "--classifier", "none",
                    "--device", "cpu"]) == 0
    db = open_database(db_path)
    with db.session() as s:
        rows = s.execute(select(Image.deployment_id, Job.state, Job.pipeline_id)
                         .join(Job, Job.image_id == Image.id)).all()
    db.close()
    assert len({pipeline for _, _, pipeline in rows}) == 1  # same models: one shared queue
    states = {dep: state for dep, state, _ in rows}
    assert states[dep_b] == "pending"
    assert "done" in states.values()


def test_a_photo_that_is_not_a_trap_sheet_is_not_processed_and_says_why(db, tmp_path):
    """The built-in detector refuses the daytime DSLR butterfly: the image is not processed
    (failed, with the reason; no "night with 0 detections") and the night's effort counts
    leave it out, while a real sheet beside it is processed as usual."""
    from tests.image_files import save_downscaled
    from tests.pipeline_helpers import SHARED_IMAGES
    from trapgui.db.counts import night_effort
    from trapgui.db.export_queries import ExportScope

    trap = tmp_path / "mixed"
    trap.mkdir()
    dslr = SHARED_IMAGES / "DSLR" / "DSC_0390.JPG"
    sheet = sorted((SHARED_IMAGES / "vermont").glob("*.jpg"))[0]
    for src in (dslr, sheet):
        save_downscaled(src, trap / src.name, SIDE, keep_mtime=True)
    dep = _scan(db, trap)
    engine = Engine(db, None, _spec(binary=None), devices="cpu",
                    model_loader=lambda device: ModelSet(BuiltinDetector(device=device)))
    assert engine.enqueue_deployment(dep) == 2
    rec = Recorder()
    summary = engine.run(rec, JobControl())
    assert summary.status == "finished" and summary.done == 1 and summary.failed == 1
    [failed] = rec.of(ItemFailed)
    assert failed.name.endswith(dslr.name) and failed.reason.startswith("not a trap sheet")
    with db.session() as s:
        job = s.execute(select(Job).where(Job.state == "failed")).scalar_one()
        assert job.error == failed.reason
        refused_id = job.image_id
        assert s.execute(select(func.count()).select_from(Detection).where(
            Detection.image_id == refused_id)).scalar() == 0
        night_of = s.execute(select(Image.night_id).where(Image.id == refused_id)).scalar()
    effort = {e.night_id: e for e in night_effort(db, ExportScope(), engine.pipeline_id)}
    if night_of is not None:  # the DSLR photo's night: nothing counted as surveyed
        e = effort[night_of]
        assert (e.images, e.processed, e.failed) == (1, 0, 1), e
