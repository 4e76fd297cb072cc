"""The built-in detector's rejection rules and score: fixtures, burnt-in text, printed scale bars
and stains are not boxed, parts of an insect do not get boxes of their own, real insects still
are boxed, and the score ranks insects above the things the rules exist for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from trapgui.ml.box_features import FEATURE_NAMES
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.ml.sheet_artefacts import FIXTURE, PRINTED, STAIN, TEXT, ArtefactParams, reject

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "trap-images"
H, W = 720, 1280  # a 16:9 sheet, worked on at full size (below the 1536 px working side)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def detector() -> BuiltinDetector:
    return BuiltinDetector(device="cpu")


def _sheet(seed: int) -> np.ndarray:
    """A lit white sheet (H, W, 3) float: slight gradient, vignetting, sensor noise."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(-1, 1, H)[:, None]
    xs = np.linspace(-1, 1, W)[None, :]
    light = 0.92 - 0.08 * (xs + 1) / 2 - 0.05 * (ys + 1) / 2 - 0.06 * (xs**2 + ys**2) / 2
    tint = np.array([0.97, 0.97, 1.0])
    return light[..., None] * tint + 0.01 * rng.standard_normal((H, W, 3))


def _mask(draw_fn, k: int = 4) -> np.ndarray:
    """Antialiased coverage (H, W) in [0, 1] of what `draw_fn(ImageDraw, k)` draws at k x."""
    im = Image.new("L", (W * k, H * k), 0)
    draw_fn(ImageDraw.Draw(im), k)
    return np.asarray(im.resize((W, H), Image.BOX), dtype=np.float64) / 255.0


def _multiply(img: np.ndarray, alpha: np.ndarray, reflectance) -> None:
    a = alpha[..., None]
    img *= 1 - a + a * np.asarray(reflectance)


def _overlay(img: np.ndarray, alpha: np.ndarray, colour) -> None:
    a = alpha[..., None]
    img[:] = img * (1 - a) + a * np.asarray(colour)


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(img, 0, 1)).permute(2, 0, 1).float().contiguous()


def _draw_screw(img, cx, cy, r, hole=False):
    disc = _mask(lambda d, k: d.ellipse([(cx - r) * k, (cy - r) * k, (cx + r) * k, (cy + r) * k], fill=255))
    _multiply(img, disc, (0.3, 0.3, 0.31))
    if hole:
        inner = _mask(lambda d, k: d.ellipse(
            [(cx - r / 2) * k, (cy - r / 2) * k, (cx + r / 2) * k, (cy + r / 2) * k], fill=255))
        _overlay(img, inner, (0.85, 0.85, 0.87))
    else:
        spot = _mask(lambda d, k: d.ellipse(
            [(cx - 0.5 * r) * k, (cy - 0.55 * r) * k, (cx - 0.05 * r) * k, (cy - 0.1 * r) * k], fill=255))
        _overlay(img, spot, (0.97, 0.97, 0.97))


def _draw_moth(img, cx, cy, length, colour=(0.55, 0.42, 0.3)):
    """A dark triangular moth with a body: no rule may take it for an artefact."""
    pts = [(cx, cy - 0.5 * length), (cx + 0.55 * length, cy + 0.45 * length),
           (cx, cy + 0.3 * length), (cx - 0.55 * length, cy + 0.45 * length)]
    wings = _mask(lambda d, k: d.polygon([(x * k, y * k) for x, y in pts], fill=255))
    _multiply(img, wings, colour)
    body = _mask(lambda d, k: d.ellipse(
        [(cx - 0.08 * length) * k, (cy - 0.5 * length) * k, (cx + 0.08 * length) * k,
         (cy + 0.35 * length) * k], fill=255))
    _multiply(img, body, (0.5, 0.45, 0.4))


def _kept(detector, img) -> np.ndarray:
    out = detector.detect([_tensor(img)])[0]
    return out.boxes[out.scores >= detector.score_threshold].numpy()


def _boxes_near(boxes: np.ndarray, x1, y1, x2, y2, margin=6) -> np.ndarray:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return boxes[(cx >= x1 - margin) & (cx <= x2 + margin) & (cy >= y1 - margin) & (cy <= y2 + margin)]


def test_screws_and_rivets_of_the_frame_are_not_boxed(detector):
    img = _sheet(11)
    screws = [(40, 40 + i * 160, 9 + i, i % 2 == 1) for i in range(4)]
    for cx, cy, r, hole in screws:
        _draw_screw(img, cx, cy, r, hole)
    _draw_moth(img, 640, 360, 60)
    kept = _kept(detector, img)
    for cx, cy, r, _ in screws:
        assert len(_boxes_near(kept, cx - r, cy - r, cx + r, cy + r)) == 0, (cx, cy, kept)
    assert len(_boxes_near(kept, 600, 320, 680, 400)) == 1, "the moth must still be boxed"


def test_burnt_in_timestamp_is_not_boxed(detector):
    img = _sheet(12)
    font = ImageFont.load_default(size=22 * 4)
    text = "2023-06-14 01:12:39"

    def glyphs(stroke):
        def draw(d, k):
            d.text(((W - 290) * k, (H - 34) * k), text, font=font, fill=255,
                   stroke_width=stroke * k, stroke_fill=255)
        return draw

    _overlay(img, _mask(glyphs(2)), (0.0, 0.0, 0.0))
    _overlay(img, _mask(glyphs(0)), (1.0, 1.0, 1.0))
    _draw_moth(img, 400, 300, 50)
    kept = _kept(detector, img)
    assert len(_boxes_near(kept, W - 300, H - 40, W, H)) == 0, kept
    assert len(_boxes_near(kept, 370, 270, 430, 330)) == 1


def test_printed_scale_bar_is_not_boxed(detector):
    img = _sheet(13)
    x0, y0, length = 420, 330, 330

    def checker(d, k):
        sq = length / 11
        for i in range(10):
            for row in range(2):
                if (i + row) % 2 == 0:
                    x, y = x0 + sq * 0.5 + i * sq, y0 + row * sq * 0.55
                    d.rectangle([x * k, y * k, (x + sq * 0.8) * k, (y + sq * 0.5) * k], fill=255)
        d.rectangle([(x0 - 20) * k, (y0 - 6) * k, (x0 - 4) * k, (y0 + sq) * k], fill=255)
        d.rectangle([(x0 + length + 4) * k, (y0 - 6) * k, (x0 + length + 20) * k, (y0 + sq) * k], fill=255)
        font = ImageFont.load_default(size=18 * k)
        d.text(((x0 + length / 2 - 25) * k, (y0 + sq * 1.3) * k), "20 mm", font=font, fill=255)

    _multiply(img, _mask(checker), (0.08, 0.08, 0.09))
    _draw_moth(img, 200, 500, 55)
    kept = _kept(detector, img)
    assert len(_boxes_near(kept, x0 - 20, y0 - 6, x0 + length + 20, y0 + 60)) == 0, kept
    assert len(_boxes_near(kept, 170, 470, 230, 530)) == 1


def test_stains_and_water_marks_are_not_boxed(detector):
    img = _sheet(14)
    from scipy import ndimage

    yy, xx = np.mgrid[0:H, 0:W]
    blob = (((xx - 300) / 70.0) ** 2 + ((yy - 250) / 45.0) ** 2 <= 1).astype(float)
    _multiply(img, ndimage.gaussian_filter(blob, 4), (0.92, 0.9, 0.82))
    ring = np.abs(np.hypot(xx - 850, yy - 420) - 60) <= 2.0
    _multiply(img, ndimage.gaussian_filter(ring.astype(float), 1.0), (0.86, 0.85, 0.8))
    _draw_moth(img, 600, 560, 55)
    kept = _kept(detector, img)
    assert len(_boxes_near(kept, 230, 205, 370, 295)) == 0, kept
    assert len(_boxes_near(kept, 790, 360, 910, 480)) == 0, kept
    assert len(_boxes_near(kept, 570, 530, 630, 590)) == 1


def test_a_wing_tip_beyond_a_pale_wing_is_part_of_its_insect(detector):
    """A dark body with a faint wing that ends in a dark tip: one box for the whole insect,
    none for the tip alone."""
    img = _sheet(15)
    body = _mask(lambda d, k: d.ellipse([580 * k, 300 * k, 610 * k, 400 * k], fill=255))
    wing = _mask(lambda d, k: d.polygon([(k * x, k * y) for x, y in
                                         [(600, 310), (720, 300), (730, 350), (605, 380)]], fill=255))
    tip = _mask(lambda d, k: d.ellipse([705 * k, 300 * k, 735 * k, 352 * k], fill=255))
    _multiply(img, wing, (0.9, 0.88, 0.84))
    _multiply(img, body, (0.35, 0.3, 0.28))
    _multiply(img, tip, (0.5, 0.4, 0.35))
    kept = _kept(detector, img)
    near = _boxes_near(kept, 560, 280, 750, 420, margin=20)
    assert len(near) == 1, kept
    x1, y1, x2, y2 = near[0]
    assert x1 <= 582 and x2 >= 733, f"the box {near[0]} must hold body and wing tip"


def _moth_with_wings_swept_back(film: bool) -> np.ndarray:
    """A big moth whose spread wings reach far below its body (its box holds the notch between
    them), optionally with a pale, barely visible film in the notch that joins whatever sits
    there to the big moth's faint region."""
    img = _sheet(21)
    wings = _mask(lambda d, k: d.polygon([(k * x, k * y) for x, y in [
        (640, 200), (820, 420), (780, 440), (640, 300), (500, 440), (460, 420)]], fill=255))
    _multiply(img, wings, (0.55, 0.42, 0.3))
    body = _mask(lambda d, k: d.ellipse([625 * k, 190 * k, 655 * k, 330 * k], fill=255))
    _multiply(img, body, (0.45, 0.4, 0.35))
    if film:
        patch = _mask(lambda d, k: d.polygon([(k * x, k * y) for x, y in [
            (600, 320), (680, 320), (690, 420), (590, 420)]], fill=255))
        _multiply(img, patch, (0.96, 0.955, 0.95))
    return img


@pytest.mark.parametrize("film", [True, False], ids=["joined-by-faint-film", "on-clean-sheet"])
def test_a_small_moth_inside_a_big_ones_box_gets_its_own(film):
    """A small moth in the notch of a big moth's wings lies inside the big one's box (and, with
    the film, in its faint region): it has a body of its own, so it is neither a part of the
    big moth nor a nested duplicate of its box. A thin leg in the same place still is."""
    big = (421, 150, 859, 480)
    moth = _moth_with_wings_swept_back(film)
    _draw_moth(moth, 640, 385, 40, colour=(0.45, 0.36, 0.3))
    kept = _kept(BuiltinDetector(), moth)
    assert len(kept) == 2, kept
    small = kept[np.argmin((kept[:, 2] - kept[:, 0]) * (kept[:, 3] - kept[:, 1]))]
    assert small[0] >= 600 and small[2] <= 680 and small[1] >= 345 and small[3] <= 420, small
    # Before the thickness limit every such moth was folded into the big one's box.
    assert len(_kept(BuiltinDetector(part_max_thickness=1.0), moth)) == 1

    leg = _moth_with_wings_swept_back(film)
    stroke = _mask(lambda d, k: d.polygon([(k * x, k * y) for x, y in [
        (630, 350), (635, 348), (645, 366), (651, 398), (646, 400), (639, 369)]], fill=255))
    _multiply(leg, stroke, (0.6, 0.42, 0.25))
    kept = _kept(BuiltinDetector(), leg)
    assert len(kept) == 1 and np.allclose(kept[0], big, atol=3), kept
    # The leg is a region of its own that only the part rule or the nested-box merge takes.
    alone = BuiltinDetector(merge_parts=False, merge_containment=1.01).detect([_tensor(leg)])[0]
    assert len(alone.boxes) == 2


def test_real_moths_are_still_boxed(detector):
    """Crops of real trap photos: moths of every shade stay boxed with a confident score."""
    crops = [
        ("sequential/20220728232239-00-69.jpg", (1729, 1556)),  # pale tortricid
        ("vermont/20220623043000-215-snapshot.jpg", (3487, 1673)),  # patterned moth
        ("panama/01-20231110224529-snapshot.jpg", (2681, 1471)),  # brown moth, dense sheet
        ("vermont/20220622000459-108-snapshot.jpg", (1572, 855)),  # small round brown beetle
    ]
    for rel, (x, y) in crops:
        with Image.open(SHARED / rel) as im:
            crop = np.asarray(im.crop((x - 640, y - 360, x + 640, y + 360)).convert("RGB"))
        out = detector.detect([_tensor(crop / 255.0)])[0]
        b, s = out.boxes.numpy(), out.scores.numpy()
        inside = (b[:, 0] <= 640) & (b[:, 2] >= 640) & (b[:, 1] <= 360) & (b[:, 3] >= 360)
        assert inside.any(), f"{rel}: no box on the insect at {x},{y}"
        assert s[inside].max() >= detector.score_threshold, f"{rel}: score {s[inside].max():.2f}"


def test_score_ranks_insects_above_fixtures_and_stains():
    """With the rejection rules switched off, the score alone puts every moth above every
    screw, washer and stain on the sheet."""
    detector = BuiltinDetector(artefact_rules=False)
    img = _sheet(16)
    from scipy import ndimage

    for i, (cx, cy) in enumerate([(60, 80), (60, 640), (1220, 80), (1220, 640)]):
        _draw_screw(img, cx, cy, 10, hole=i % 2 == 1)
    yy, xx = np.mgrid[0:H, 0:W]
    blob = (((xx - 400) / 60.0) ** 2 + ((yy - 200) / 40.0) ** 2 <= 1).astype(float)
    _multiply(img, ndimage.gaussian_filter(blob, 5), (0.9, 0.9, 0.85))
    moths = [(700, 300, 60, (0.55, 0.42, 0.3)), (900, 500, 40, (0.75, 0.65, 0.5)),
             (500, 520, 50, (0.4, 0.38, 0.36))]
    for cx, cy, length, colour in moths:
        _draw_moth(img, cx, cy, length, colour)
    out = detector.detect([_tensor(img)])[0]
    b, s = out.boxes.numpy(), out.scores.numpy()
    moth_scores = [s[_index_near(b, cx, cy)] for cx, cy, _, _ in moths]
    assert all(v is not None for v in moth_scores)
    others = [i for i in range(len(b)) if all(_index_near(b[i : i + 1], cx, cy) is None
                                               for cx, cy, _, _ in moths)]
    assert others, "the artefacts should be scored when the rules are off"
    assert min(moth_scores) > max(s[others]), (moth_scores, s[others])


def _index_near(boxes, cx, cy):
    cxs, cys = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    d = np.hypot(cxs - cx, cys - cy)
    return int(np.argmin(d)) if len(d) and d.min() < 25 else None


def test_explain_matches_detect(detector):
    img = _sheet(17)
    _draw_moth(img, 640, 360, 60)
    _draw_screw(img, 40, 40, 10)
    t = _tensor(img)
    plain = detector.detect([t])[0]
    explained = detector.explain([t])[0]
    torch.testing.assert_close(explained.output.boxes, plain.boxes)
    torch.testing.assert_close(explained.output.scores, plain.scores)
    assert explained.features.shape == (len(plain.scores), len(FEATURE_NAMES))
    assert explained.all_features.shape[0] == explained.all_scores.shape[0] >= len(plain.scores)


def _features(**values) -> "RegionFeaturesStub":
    base = dict.fromkeys(FEATURE_NAMES, 0.0)
    base.update(values)
    return RegionFeaturesStub(torch.tensor([[base[n] for n in FEATURE_NAMES]], dtype=torch.float32))


class RegionFeaturesStub:
    def __init__(self, values):
        self.values = values

    def __getitem__(self, name):
        return self.values[:, FEATURE_NAMES.index(name)]


@pytest.mark.parametrize(
    ("values", "box", "area", "expected"),
    [
        # a grey, dark, perfect disc: a fixture
        (dict(chroma_ratio=0.05, log_elongation=0.05, fill=0.76, dark_max=0.8), (100, 100, 120, 120), 300, FIXTURE),
        # the same disc in brown: an insect (a round beetle), kept
        (dict(chroma_ratio=0.5, log_elongation=0.05, fill=0.76, dark_max=0.8), (100, 100, 120, 120), 300, 0),
        # an elongated dark grey region: not round, kept
        (dict(chroma_ratio=0.05, log_elongation=0.6, fill=0.5, dark_max=0.8), (100, 100, 140, 120), 500, 0),
        # big, grey, dark and rectilinear: printed
        (dict(chroma_ratio=0.1, rectilinear=0.6, dark_max=0.8, log_elongation=1.0), (300, 300, 420, 340), 2000, PRINTED),
        # small and rectilinear (pixel grid): kept
        (dict(chroma_ratio=0.1, rectilinear=0.6, dark_max=0.8, log_elongation=0.3), (300, 300, 310, 308), 50, 0),
        # faint and flat: a stain
        (dict(contrast=0.08, dark_max=0.15, chroma_ratio=0.6, log_elongation=0.3), (500, 300, 560, 340), 1500, STAIN),
        # white overlay fill in a corner band, off the frame: text
        (dict(highlight=0.2, chroma_ratio=0.1, log_elongation=1.5, dark_max=0.9), (1180, 690, 1270, 710), 400, TEXT),
        # the same region touching the frame: an insect cut by the frame, kept
        (dict(highlight=0.2, chroma_ratio=0.1, log_elongation=1.5, dark_max=0.9), (1180, 690, 1280, 720), 400, 0),
    ],
)
def test_rejection_rules_on_measurements(values, box, area, expected):
    f = _features(**values)
    reason = reject(f, torch.tensor([box], dtype=torch.float32), torch.tensor([float(area)]), H, W, ArtefactParams())
    assert int(reason[0]) == expected
