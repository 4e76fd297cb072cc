"""BatchProcessor: the device-side step (real built-in detector, real small torch classifiers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.pipeline_helpers import (OutOfMemoryOverClassifier, binary_classifier, info,
                                    make_tiny_trap, species_classifier, tiny_net)
from trapgui.core.types import Rank
from trapgui.ml.base import DetectorOutput
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.pipeline.loader import Decoder, ImageLoader, decode_image
from trapgui.pipeline.processor import BatchProcessor, DecodedImage

KNOWN = [(130, 100, 200, 155), (470, 330, 550, 400), (670, 70, 720, 125)]  # x1 y1 x2 y2


@pytest.fixture(scope="module")
def sheet_jpeg(tmp_path_factory):
    """A lit sheet (800x600) with three dark 'insects' at known places."""
    rng = np.random.default_rng(0)
    arr = np.clip(225 + rng.normal(0, 3, (600, 800, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for box in KNOWN:
        draw.ellipse(box, fill=(60, 45, 30))
    path = tmp_path_factory.mktemp("sheet") / "sheet.jpg"
    im.save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    folder = make_tiny_trap(tmp_path_factory.mktemp("tiny"), side=320, limit=None,
                            folders=("panama", "vermont"))
    return [decode_image(i, str(p)) for i, p in enumerate(sorted(folder.glob("*.jpg"))[:3])]


@pytest.fixture(scope="module")
def detector():
    return BuiltinDetector()


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _contains(outer, inner):
    return (outer[0] <= inner[0] + 2 and outer[1] <= inner[1] + 2 and outer[2] >= inner[2] - 2
            and outer[3] >= inner[3] - 2)


def test_boxes_are_in_original_pixels_when_decoded_reduced(sheet_jpeg, detector):
    reduced = decode_image(1, str(sheet_jpeg), max_side=400, full_resolution=False)
    assert reduced.scale == 0.5 and reduced.orig_size == (800, 600)
    assert tuple(reduced.tensor.shape) == (3, 300, 400)
    full = decode_image(2, str(sheet_jpeg))
    small, big = BatchProcessor(detector).process([reduced, full])
    for result in (small, big):
        boxes = [d.box.as_tuple() for d in result.detections]
        for known in KNOWN:  # the detector pads its boxes: each insect is inside a box not
            # much larger than it (a box in reduced pixels would be half as far from the origin)
            assert any(_contains(b, known) and _iou(known, b) > 0.35 for b in boxes), (known, boxes)
        assert all(0 <= b[0] < b[2] <= 800 and 0 <= b[1] < b[3] <= 600 for b in boxes)


def test_binary_gates_species_and_subbatches_are_capped(tiny_images, detector):
    # pass 1 learns the crops' brightness so the cut splits them into moths and non-moths
    probe = binary_classifier(cut=0.0)
    scored = BatchProcessor(detector, probe).process_with_scores(tiny_images)
    means = [-float(v[0]) / 20 for p in scored for v in p.logits["darkness_binary"]]
    assert len(means) > 10
    binary, species = binary_classifier(cut=float(np.median(means))), species_classifier()
    results = BatchProcessor(detector, binary, species, classification_batch_size=8,
                             top_k=3).process(tiny_images)
    dets = [d for r in results for d in r.detections]
    moths = [d for d in dets if d.classifications[0].label == "moth"]
    assert 0 < len(moths) < len(dets)
    for d in dets:
        assert d.classifications[0].rank == Rank.BINARY
        ranks = [c.rank for c in d.classifications]
        assert ranks == ([Rank.BINARY, Rank.SPECIES] if d in moths else [Rank.BINARY])
    assert binary.crops_seen == len(dets) and species.crops_seen == len(moths)
    assert binary.largest_call <= 8 and species.largest_call <= 8
    top = moths[0].classifications[1]
    assert len(top.top_labels) == 3 and top.top_scores == sorted(top.top_scores, reverse=True)


def test_zero_crops_means_no_forward_call(detector):
    rng = np.random.default_rng(1)
    blank = torch.from_numpy(np.clip(230 + rng.normal(0, 2, (200, 300, 3)), 0, 255)
                             .astype(np.uint8)).permute(2, 0, 1)
    binary, species = binary_classifier(), species_classifier()
    processor = BatchProcessor(detector, binary, species)
    images = [DecodedImage(1, "blank.jpg", blank, (300, 200)),
              DecodedImage(2, "broken.jpg", None, (300, 200), error="Unreadable image: truncated.")]
    ok, broken = processor.process(images)
    assert ok.error is None and ok.detections == []
    assert broken.error == "Unreadable image: truncated."
    assert binary.calls == 0 and species.calls == 0
    assert processor.process([images[1]])[0].error is not None


class DetectorWithBadBoxes(BuiltinDetector):
    """The built-in detector plus the kind of boxes a detector can emit at the edges."""

    def detect(self, images):
        outputs = super().detect(images)
        bad = torch.tensor([[50., 40., 20., 60.], [10., 30., 10., 30.],
                            [5000., 5000., 5100., 5100.], [float("nan"), 0., 10., 10.],
                            [-20., -20., 30., 25.]])
        return [DetectorOutput(torch.cat([o.boxes, bad]), torch.cat([o.scores, torch.full((5,), .9)]))
                for o in outputs]


def test_degenerate_boxes_are_dropped_counted_and_edges_clipped(tiny_images):
    results = BatchProcessor(DetectorWithBadBoxes(), binary_classifier()).process(tiny_images[:1])
    r = results[0]
    w, h = tiny_images[0].orig_size
    assert r.skipped_boxes == 4
    assert any(d.box.as_tuple() == (0.0, 0.0, 30.0, 25.0) for d in r.detections)
    assert all(0 <= d.box.x1 < d.box.x2 <= w and 0 <= d.box.y1 < d.box.y2 <= h
               for d in r.detections)
    assert all(d.classifications for d in r.detections)


def test_full_score_vectors_on_request(tiny_images, detector):
    species = species_classifier(n=5)
    processed = BatchProcessor(detector, None, species, top_k=2).process_with_scores(tiny_images[:1])
    p = processed[0]
    vectors = p.scores["tiny_species"]
    assert len(vectors) == len(p.result.detections) > 0
    for det, vec, logit in zip(p.result.detections, vectors, p.logits["tiny_species"]):
        assert vec.shape == (5,) and abs(float(vec.sum()) - 1) < 1e-5
        assert f"species {int(vec.argmax())}" == det.classifications[0].label
        assert np.allclose(torch.softmax(torch.from_numpy(logit), 0).numpy(), vec, atol=1e-6)


def test_out_of_memory_halves_the_batch_and_records_it(tiny_images, detector):
    normal = species_classifier(n=5)
    flaky = OutOfMemoryOverClassifier(info("tiny_species", Rank.SPECIES,
                                           [f"species {i}" for i in range(5)]), tiny_net(5),
                                      limit=4)
    expected = BatchProcessor(detector, None, normal, classification_batch_size=16).process(tiny_images[:1])
    processor = BatchProcessor(detector, None, flaky, classification_batch_size=16)
    got = processor.process(tiny_images[:1])
    assert [d.classifications[0].label for d in got[0].detections] == \
        [d.classifications[0].label for d in expected[0].detections]
    assert processor.classification_batch_size == 4
    assert any("out of memory" in n and "16 -> 8" in n for n in processor.notes)


def test_loader_pool_keeps_order_and_reports_unreadable_files(tmp_path, sheet_jpeg):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(sheet_jpeg.read_bytes()[:3000])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")

    loader = ImageLoader(Decoder(), 2)
    try:
        files = [sheet_jpeg, bad, empty, tmp_path / "gone.jpg"]
        futures = [loader.submit(i, str(f), (800, 600)) for i, f in enumerate(files, 1)]
        decoded = [f.result() for f in futures]
    finally:
        loader.close()
    assert [d.image_id for d in decoded] == [1, 2, 3, 4]
    assert decoded[0].error is None and decoded[0].tensor.dtype == torch.uint8
    assert all(d.error and d.error.startswith("Unreadable image") for d in decoded[1:])
    assert "no longer exists" in decoded[3].error and decoded[3].orig_size == (800, 600)
