"""Embeddings from the device step (no second pass), tracking at the end of a run, and the whole
path `trapgui process` -> `trapgui export occurrences` on the 5 hand-labelled sequential frames."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from tests.pipeline_helpers import CountingClassifier, binary_classifier, info, make_tiny_trap
from trapgui.core.embedding_kind import embedding_kind
from trapgui.core.types import Rank
from trapgui.ml.appearance import FeatureClassifier
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.pipeline.loader import decode_image
from trapgui.pipeline.processor import BatchProcessor
from trapgui.tracking import decode_embedding

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "tests" / "data" / "tracking" / "sequential-identities.json"


class HeadNet(torch.nn.Module):
    """A small classifier shaped like the catalogue's (torchvision ResNet): features, then
    a final linear layer called ``fc``."""

    def __init__(self, n: int):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.fc = torch.nn.Linear(16, n)

    def forward(self, x):
        return self.fc(self.body(x))


def head_classifier(n: int = 5) -> CountingClassifier:
    return CountingClassifier(info("tiny_species", Rank.SPECIES, [f"species {i}" for i in range(n)]),
                              HeadNet(n))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = make_tiny_trap(tmp_path_factory.mktemp("seq"), side=640, folders=("sequential",))
    return folder, [decode_image(i, str(p)) for i, p in enumerate(sorted(folder.glob("*.jpg"))[:2], 1)]


@pytest.fixture(scope="module")
def detector():
    return BuiltinDetector()


def _unit_rows(dets):
    vectors = [decode_embedding(d.embedding) for d in dets]
    assert all(v is not None and v.shape == (128,) for v in vectors)
    norms = np.linalg.norm(np.stack(vectors).astype(np.float64), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)  # L2-normalised, then float16 (3 digits)
    return np.stack(vectors)


def test_without_a_classifier_the_descriptor_of_the_same_crops(frames, detector):
    _, images = frames
    processor = BatchProcessor(detector)
    assert processor.embedding_kind == embedding_kind(None)
    results = processor.process(images)
    dets = [d for r in results for d in r.detections]
    assert len(dets) > 10
    _unit_rows(dets)
    assert all(d.sharpness is not None and d.sharpness >= 0 for d in dets)
    off = BatchProcessor(detector, embeddings=False).process(images)
    assert all(d.embedding is None for r in off for d in r.detections)
    assert processor.embedding_kind is not None and BatchProcessor(detector, embeddings=False).embedding_kind is None


def test_with_a_classifier_its_features_from_the_one_forward(frames, detector):
    _, images = frames
    with_head, plain = head_classifier(), head_classifier()
    processor = BatchProcessor(detector, None, with_head)
    assert processor.embedding_kind == embedding_kind("tiny_species")
    got = processor.process(images)
    reference = BatchProcessor(detector, None, plain, embeddings=False).process(images)
    # no second pass: the same forward calls, the same crops, the same results
    assert (with_head.calls, with_head.crops_seen) == (plain.calls, plain.crops_seen)
    dets = [d for r in got for d in r.detections]
    assert [d.classifications[0].top_scores for d in dets] == \
        [d.classifications[0].top_scores for r in reference for d in r.detections]
    vectors = _unit_rows(dets)
    # they are the projected penultimate features of those crops: recompute for the first image
    crops = processor._crops(with_head, [images[0].tensor], [torch.tensor(
        [[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in got[0].detections])],
        [(0, d) for d in got[0].detections], list(range(len(got[0].detections))), {})[0]
    fc = FeatureClassifier(HeadNet(5), 128, 0)
    with torch.inference_mode():
        _, feats = fc(crops)
        expected = fc.embed(feats).float().numpy()
    n = len(got[0].detections)
    assert np.abs(vectors[:n] - expected).max() < 2e-3  # float16 storage
    assert all(d.sharpness is not None for d in dets)


def test_a_binary_classifier_without_a_linear_head_falls_back_to_the_descriptor(frames, detector):
    _, images = frames
    processor = BatchProcessor(detector, binary_classifier())  # DarknessNet: no final Linear
    assert processor.embedding_kind == embedding_kind(None)
    dets = [d for r in processor.process(images) for d in r.detections]
    _unit_rows(dets)


def test_a_run_stores_embeddings_and_tracks_its_nights(tmp_path, frames):
    from trapgui.db import open_database
    from trapgui.db.tables import Detection, Occurrence, PipelineConfig
    from trapgui.pipeline.engine import Engine
    from trapgui.pipeline.model_set import ModelSet
    from trapgui.pipeline.spec import PipelineSpec
    from trapgui.scan.indexer import scan_folder

    folder, _ = frames
    db = open_database(tmp_path / "c.sqlite3")
    try:
        report = scan_folder(db, folder)
        spec = PipelineSpec(detector="builtin", binary=None, species="tiny_species")
        clf = head_classifier(4)
        engine = Engine(db, None, spec, devices="cpu",
                        model_loader=lambda device: ModelSet(BuiltinDetector(), species=clf))
        engine.enqueue_deployment(report.deployment_id)
        summary = engine.run()
        assert summary.status == "finished" and summary.done == 5
        assert summary.tracking is not None and len(summary.tracking.nights) == 1
        with db.session() as s:
            config = s.execute(select(PipelineConfig.config)).scalar_one()
            rows = s.execute(select(Detection.embedding, Detection.sharpness,
                                    Detection.occurrence_id)).all()
            occurrences = s.execute(select(Occurrence)).scalars().all()
        assert config["embedding"] == "features:tiny_species:projection-0:128"
        assert rows and all(len(r[0]) == 256 and r[1] is not None and r[2] is not None for r in rows)
        assert len(occurrences) == summary.tracking.occurrences
        assert len(occurrences) < len(rows)  # individuals, not detections
        assert all(o.label and o.label_rank == "species" for o in occurrences)
        # a second run has nothing to do and nothing to track
        again = engine.run()
        assert again.done == 0 and again.tracking.nights == ()
    finally:
        db.close()


# ---- the whole path, against the hand labels -----------------------------------------------------
def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_process_then_export_occurrences_counts_the_hand_labelled_individuals(tmp_path,
                                                                              small_trap_images):
    """The 5 sequential frames at 1024 px (a quarter of the labelled resolution): every
    detection is matched to the hand-labelled box it overlaps most (IoU >= 0.3, boxes scaled to
    the labelled frame), and the individuals exported are compared with the labelled objects
    those detections show. Tolerances (stated in docs/tracking.md): individuals within 15 % of
    the labelled objects they show, and, leaving out those that show an unsure speck, within
    15 % of the 28 labelled insects; at least 95 % of consecutive links between labelled
    detections right."""
    labels = json.loads(LABELS.read_text())
    folder = tmp_path / "sequential"
    folder.mkdir()
    for f in (small_trap_images / "sequential").glob("*.jpg"):
        (folder / f.name).write_bytes(f.read_bytes())
    dbfile, out = tmp_path / "c.sqlite3", tmp_path / "occ.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "trapgui", "--db", str(dbfile)]
    done = subprocess.run(run + ["process", str(folder), "--classifier", "none", "--quiet",
                                 "--device", "cpu"], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    assert "Individuals:" in done.stdout and "fixtures left out" in done.stdout
    exported = subprocess.run(run + ["export", "occurrences", "--out", str(out),
                                     "--min-score", "0.5"], env=env, capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    counted = [r for r in rows if r["fixture"] == "false"]

    import sqlite3

    con = sqlite3.connect(dbfile)
    dets = con.execute("SELECT d.id, i.rel_path, i.width, d.x1, d.y1, d.x2, d.y2, d.score, "
                       "d.occurrence_id FROM detections d JOIN images i ON i.id = d.image_id "
                       "ORDER BY i.captured_at, d.id").fetchall()
    con.close()
    frames = {Path(f["file"]).name: f for f in labels["frames"]}
    truth = {}
    for det_id, name, width, *box, score, occ in dets:
        frame = frames[name]
        k = frame["size"][0] / width
        scaled = [v * k for v in box]
        best = max(((_iou(scaled, b["box"]), b["object"]) for b in frame["boxes"]), default=(0, None))
        truth[det_id] = best[1] if best[0] >= 0.3 else None
    assert all(d[8] is not None for d in dets)  # every detection tracked
    counted_ids = {int(r["occurrence_id"]) for r in counted}
    shown = {truth[d[0]] for d in dets if d[8] in counted_ids and truth[d[0]]}
    assert abs(len(counted) - len(shown)) <= 0.15 * len(shown), (len(counted), len(shown))
    # What each counted individual shows (the object most of its detections show). The count
    # is of insects: individuals showing an unsure speck are don't-care (as in the detector's
    # scoring); the rest must be within 15 % of the 28 labelled insects. (Before issue 17 the
    # detector also counted marks, fragments and more unsure specks: 41 objects.)
    kind = {o: v["kind"] for o, v in labels["objects"].items()}
    per_occ: dict[int, list[str]] = {}
    for d in dets:
        if d[8] in counted_ids and truth[d[0]]:
            per_occ.setdefault(d[8], []).append(truth[d[0]])
    shows = {occ: max(set(objs), key=objs.count) for occ, objs in per_occ.items()}
    unsure = sum(kind[o] == "unsure" for o in shows.values())
    made = {k: sum(kind[o] == k for o in shows.values()) for k in ("insect", "fragment", "mark")}
    n_insects = sum(v == "insect" for v in kind.values())
    assert abs(len(counted) - unsure - n_insects) <= 0.15 * n_insects, (len(counted), unsure, made)
    insects = {o for o in shown if labels["objects"][o]["kind"] == "insect"}
    # Of the 28: the smallest ones fall below 0.5 at 1024 px, and so do two pale grey slim
    # moths and the caddis fly (faint, grey, low contrast: the score ranks them with stains;
    # 0.14/0.30/0.26 at 1024 px, 0.10/0.32/0.45 at full size), which the detector before
    # issue 17 scored 0.9 (it scored nearly every box 0.9-1.0). A known cost of the score,
    # see docs/builtin-detector.md.
    assert len(insects) >= 22, sorted(set(kind) - insects - {o for o, k in kind.items() if k != "insect"})
    by_occ: dict[int, list[int]] = {}
    for d in dets:
        by_occ.setdefault(d[8], []).append(d[0])
    right = wrong = 0
    for members in by_occ.values():
        for a, b in zip(members, members[1:]):
            if truth[a] and truth[b]:
                right, wrong = right + (truth[a] == truth[b]), wrong + (truth[a] != truth[b])
    assert right >= 0.95 * (right + wrong) and right > 80, (right, wrong)
    # the detections CSV now links each detection to its individual
    det_csv = tmp_path / "det.csv"
    subprocess.run(run + ["export", "detections", "--out", str(det_csv)], env=env, check=True,
                   capture_output=True, timeout=300)
    det_rows = list(csv.DictReader(det_csv.open(encoding="utf-8")))
    assert det_rows and all(r["occurrence_id"] and r["fixture"] == "false" for r in det_rows)
