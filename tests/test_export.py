"""CSV export of detections: columns, values, RFC 4180 quoting, formula escaping, filters,
progress/cancel, and flat memory however many rows."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import stat
import threading
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from trapgui.core.errors import Cancelled, UserInputError
from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Detection, Image
from trapgui.export.csv_export import (COLUMNS, ExportFilter, escape_cell, export_detections,
                                       images_in_several_pipelines, pipeline_id_by_name,
                                       pipelines_of)
from trapgui.scan.indexer import scan_folder
from tests.image_files import make_jpeg

DOC = Path(__file__).resolve().parent.parent / "docs" / "csv-columns.md"
MODELS = {"builtin": {"name": "Built-in detector", "version": "1.0"},
          "bin": {"name": "Moth / non-moth", "version": "2024"},
          "sp": {"name": "Quebec & Vermont species", "version": "v2"}}
TRICKY = ['=HYPERLINK("http://x")', "+1 moth", "-2", "@SUM(A1)", "\tTabbed", "\rCR",
          "Comma, label", 'Quote "q"', "Two\nlines", "Épinette ñ 蛾"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def processed(db, trap_copy):
    """The real trap images plus one with a UTC offset, 'processed' with known results."""
    make_jpeg(trap_copy / "vermont" / "offset.jpg", original="2022:06:22 23:30:00",
              offset_original="-04:00", size=(400, 200))
    for folder in ("vermont", "panama"):
        scan_folder(db, trap_copy / folder)
    pid = jobqueue.get_or_create_pipeline(db, "p1", "Quebec pipeline", {"x": 1})
    run = jobqueue.start_run(db, pid, models=MODELS, devices=["cpu"], settings={}, app_version="t")
    with db.session() as s:
        ids = {rel: i for i, rel in s.execute(select(Image.id, Image.rel_path))}
    jobqueue.enqueue(db, pid, ids.values())
    claimed = jobqueue.claim(db, pid, "w", 100, 60)
    results = []
    for c in claimed:
        dets = [DetectionResult(Box(100, 50, 300, 150), 0.95, "builtin", [
            ClassificationResult("bin", Rank.BINARY, "moth", 0.91),
            ClassificationResult("sp", Rank.SPECIES, TRICKY[c.image_id % len(TRICKY)], 0.42,
                                 ["a", "b"], [0.42, 0.2])]),
            DetectionResult(Box(10, 10, 20, 30), 0.30, "builtin", [
                ClassificationResult("bin", Rank.BINARY, "nonmoth", 0.7)])]
        results.append(ImageResult(c.image_id, dets))
    jobqueue.complete(db, pid, run, "w", results)
    return db, ids, pid


def documented_columns(section: str) -> list[str]:
    """The column names of one ``## section`` of docs/csv-columns.md, in order."""
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", body, re.M)


def test_columns_are_all_documented():
    assert documented_columns("Detections CSV") == COLUMNS


def test_rows_and_values(processed, tmp_path):
    db, ids, pid = processed
    out = tmp_path / "detections.csv"
    report = export_detections(db, out)
    rows = read_csv(out)
    assert report.rows == len(rows) == 2 * len(ids) == 16
    assert list(rows[0]) == COLUMNS
    # sorted by trap, night, capture time: the first rows are panama's first image
    assert [r["trap"] for r in rows] == ["panama"] * 8 + ["vermont"] * 8
    by_image = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    first = by_image["20220622000459-108-snapshot.jpg"][0]
    assert first["night"] == "2022-06-21"
    assert first["capture_time"] == "2022-06-22T00:04:59"
    assert first["time_source"] == "exif_datetime_original"
    assert (first["image_width"], first["image_height"]) == ("1024", "540")
    assert (first["x1"], first["y1"], first["x2"], first["y2"]) == ("100", "50", "300", "150")
    assert first["x1_rel"] == "0.097656" and first["y2_rel"] == "0.277778"
    assert first["detection_score"] == "0.95"
    assert first["detector_model"] == "Built-in detector 1.0"
    assert (first["binary_label"], first["binary_score"], first["binary_model"]) == (
        "moth", "0.91", "Moth / non-moth 2024")
    assert (first["order_label"], first["order_score"], first["order_model"]) == ("", "", "")
    assert first["species_score"] == "0.42"
    assert first["species_model"] == "Quebec & Vermont species v2"
    assert first["label_rank"] == "species" and first["pipeline"] == "Quebec pipeline"
    second = by_image["20220622000459-108-snapshot.jpg"][1]
    assert (second["label"], second["label_rank"], second["species_label"]) == (
        "nonmoth", "binary", "")
    offset = by_image["offset.jpg"][0]
    assert offset["capture_time"] == "2022-06-22T23:30:00-04:00"
    assert offset["x2_rel"] == "0.75"


def test_quoting_and_formula_escaping(processed, tmp_path):
    db, ids, pid = processed
    out = tmp_path / "d.csv"
    export_detections(db, out)
    raw = out.read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") >= 17  # RFC 4180 line ends
    raw.decode("utf-8")  # valid UTF-8, no BOM by default
    assert not raw.startswith(b"\xef\xbb\xbf")
    species = {r["species_label"] for r in read_csv(out)} - {""}
    assert species <= {escape_cell(t) for t in TRICKY}
    for cell in species:
        if cell[1:] in TRICKY and cell[0] == "'":
            assert cell[1] in "=+-@\t\r"
        else:
            assert cell[0] not in "=+-@\t\r"
    assert escape_cell("=1+1") == "'=1+1" and escape_cell("Noctua") == "Noctua"
    assert escape_cell("-") == "'-" and escape_cell("") == ""


def test_excel_bom(processed, tmp_path):
    db, _, _ = processed
    out = tmp_path / "excel.csv"
    export_detections(db, out, excel_bom=True)
    assert out.read_bytes().startswith(b"\xef\xbb\xbftrap,")


def test_exported_file_is_readable_like_any_saved_file(processed, tmp_path):
    """The temporary file was private (0600): a CSV in a shared lab folder must not be."""
    db, _, _ = processed
    out = tmp_path / "shared.csv"
    old = os.umask(0o022)
    try:
        export_detections(db, out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    out.chmod(0o640)  # a file exported again keeps the mode its owner gave it
    export_detections(db, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_images_processed_with_two_configurations(processed, tmp_path):
    """Detection-only first, then with classifiers: each insect is detected by both. The export
    says so and --pipeline keeps one configuration."""
    db, ids, pid = processed
    other = jobqueue.get_or_create_pipeline(db, "p2", "builtin only", {"x": 2})
    run = jobqueue.start_run(db, other, models=MODELS, devices=["cpu"], settings={}, app_version="t")
    jobqueue.enqueue(db, other, ids.values())
    claimed = jobqueue.claim(db, other, "w2", 100, 60)
    jobqueue.complete(db, other, run, "w2", [ImageResult(c.image_id, [DetectionResult(
        Box(100, 50, 300, 150), 0.9, "builtin", [])]) for c in claimed])
    assert pipelines_of(db) == ["Quebec pipeline", "builtin only"]
    assert images_in_several_pipelines(db) == len(ids)
    assert images_in_several_pipelines(db, ExportFilter(pipeline_id=other)) == 0
    assert pipelines_of(db, ExportFilter(pipeline_id=other)) == ["builtin only"]
    assert pipeline_id_by_name(db, "builtin only") == other
    with pytest.raises(UserInputError, match="No model configuration is called 'nope'"):
        pipeline_id_by_name(db, "nope")
    both = read_csv(export_detections(db, tmp_path / "both.csv").path)
    one = read_csv(export_detections(db, tmp_path / "one.csv",
                                     ExportFilter(pipeline_id=other)).path)
    assert len(one) == len(ids) and len(both) == 3 * len(ids)
    assert {r["pipeline"] for r in one} == {"builtin only"}


def test_filters(processed, tmp_path):
    db, ids, pid = processed
    out = tmp_path / "f.csv"

    def export(**kw):
        export_detections(db, out, ExportFilter(**kw))
        return read_csv(out)

    rows = export(nights=[dt.date(2022, 6, 21)])
    assert {r["image"] for r in rows} == {"20220622000459-108-snapshot.jpg"}
    rows = export(nights=[dt.date(2022, 6, 22), dt.date(2023, 11, 10)])
    assert len(rows) == 14
    with db.session() as s:
        dep = s.execute(select(Image.deployment_id).where(
            Image.rel_path == "offset.jpg")).scalar()
    assert {r["trap"] for r in export(deployment_ids=[dep])} == {"vermont"}
    with db.session() as s:
        night_id = s.execute(select(Image.night_id).where(
            Image.rel_path == "20220622000459-108-snapshot.jpg")).scalar()
    rows = export(night_ids=[night_id])  # the GUI's exact selection
    assert {r["image"] for r in rows} == {"20220622000459-108-snapshot.jpg"}
    assert {r["detection_score"] for r in export(min_detection_score=0.5)} == {"0.95"}
    assert {r["label_rank"] for r in export(min_classification_score=0.5)} == {"binary"}
    assert export(min_detection_score=0.99) == []
    assert export(pipeline_id=pid + 1) == []
    assert out.read_text(encoding="utf-8").startswith("trap,trap_folder,")  # header only


def test_progress_and_cancel(processed, tmp_path, monkeypatch):
    import trapgui.export.csv_export as mod

    db, _, _ = processed
    monkeypatch.setattr(mod, "PARTITION", 5)
    seen = []
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "p.csv"
    export_detections(db, out, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (16, 16) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    out.write_text("my previous export\n")
    stop = threading.Event()
    with pytest.raises(Cancelled):
        export_detections(db, out, progress=lambda d, t: stop.set(), cancel=stop)
    assert out.read_text() == "my previous export\n"  # untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.csv"]  # no partial file left


def test_bad_output_paths(processed, tmp_path):
    db, _, _ = processed
    with pytest.raises(UserInputError, match="is a folder"):
        export_detections(db, tmp_path)
    with pytest.raises(UserInputError, match="does not exist"):
        export_detections(db, tmp_path / "nope" / "x.csv")


def _bulk_detections(db, image_id: int, n: int) -> None:
    rows = [{"image_id": image_id, "pipeline_id": 1, "x1": 1.0, "y1": 2.0, "x2": 30.0,
             "y2": 40.0, "score": 0.5, "detector": "builtin", "top_label": f"label {i}",
             "top_score": 0.5, "top_rank": "species"} for i in range(n)]
    with db.write_session() as s:
        for i in range(0, n, 10_000):
            s.execute(insert(Detection), rows[i:i + 10_000])


def _peak_export(db, out) -> int:
    tracemalloc.start()
    try:
        export_detections(db, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_rows(db, tmp_path, monkeypatch):
    import trapgui.export.csv_export as mod

    monkeypatch.setattr(mod, "PARTITION", 200)  # both exports span many partitions
    trap = tmp_path / "trap"
    make_jpeg(trap / "20220622220000.jpg")
    scan_folder(db, trap)
    jobqueue.get_or_create_pipeline(db, "k", "p", {})
    with db.session() as s:
        image_id = s.execute(select(Image.id)).scalar()
    _bulk_detections(db, image_id, 2_000)
    small = _peak_export(db, tmp_path / "small.csv")
    _bulk_detections(db, image_id, 18_000)
    large = _peak_export(db, tmp_path / "large.csv")
    assert len(read_csv(tmp_path / "large.csv")) == 20_000
    # ten times the rows, about the same peak (a list of all rows would be ~10x)
    assert large < small * 1.3, (small, large)


def test_nights_table_and_deployments_count_processing(processed):
    from trapgui.db.catalogue_queries import list_deployments, nights_table

    db, ids, pid = processed
    table = {(r.deployment_name, r.date.isoformat()): r for r in nights_table(db)}
    v21 = table[("vermont", "2022-06-21")]
    assert (v21.images, v21.processed, v21.detections, v21.missing) == (1, 1, 2, 0)
    v22 = table[("vermont", "2022-06-22")]  # two real images and offset.jpg (23:30)
    assert (v22.images, v22.processed, v22.detections) == (3, 3, 6)
    assert table[("panama", "2023-11-10")].detections == 8
    assert nights_table(db, pipeline_id=pid + 1)[0].processed == 0  # another pipeline: none
    deps = {d.name: d for d in list_deployments(db)}
    assert (deps["vermont"].images, deps["vermont"].nights) == (4, 2)
    assert (deps["panama"].images, deps["panama"].nights) == (4, 1)
