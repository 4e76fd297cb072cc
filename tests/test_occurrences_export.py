"""The occurrences CSV (one row per individual) and the columns issue 13 adds to the detections
CSV (occurrence_id, fixture) and issue 14 to every export (final label, method, identifier,
machine label); every CSV's columns documented in docs/csv-columns.md."""

from __future__ import annotations

import csv
import json

import pytest

from tests import export_fixtures as ef
from tests.test_export import documented_columns
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.export import crops, matrix, occurrences_csv
from trapgui.export.common import ExportRun
from trapgui.export.dispatch import ExportRequest, run_export


def read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def catalogue(db, trap_copy):
    return ef.build(db, trap_copy)


def test_every_csv_is_documented():
    assert documented_columns("Occurrences CSV") == occurrences_csv.COLUMNS
    assert documented_columns("Species × night matrix") == matrix.EFFORT_COLUMNS + [
        "individuals"]
    assert documented_columns("Night summary") == matrix.SUMMARY_COLUMNS[
        len(matrix.EFFORT_COLUMNS):]
    assert documented_columns("Crops index") == crops.INDEX_COLUMNS


def test_one_row_per_individual(catalogue, tmp_path):
    out = tmp_path / "occurrences.csv"
    result = occurrences_csv.export_occurrences(
        ExportRun.start(catalogue.db, ExportScope(), Thresholds()), out)
    rows = read(out)
    assert list(rows[0]) == occurrences_csv.COLUMNS
    assert result.rows == {"occurrences": 12} and len(rows) == 12  # fixtures too, flagged
    by_id = {int(r["occurrence_id"]): r for r in rows}
    night = min(n for n, _ in catalogue.occurrences)
    a = by_id[catalogue.occurrences[(night, "A")]]
    assert (a["trap"], a["night"], a["label"], a["label_rank"], a["label_score"]) == (
        "vermont", "2022-06-21", "Noctua pronuba", "species", "0.8")
    assert (a["classification_method"], a["identified_by"], a["machine_label"]) == (
        "machine", "Quebec & Vermont species v2", "Noctua pronuba")
    assert (a["binary_label"], a["binary_score"], a["species_label"]) == (
        "moth", "0.9", "Noctua pronuba")
    assert a["first_seen"] == "2022-06-22T00:04:59-04:00" and a["detections"] == "1"
    assert (a["best_x1"], a["best_y2"], a["best_image"]) == (
        "100", "150", "20220622000459-108-snapshot.jpg")
    assert a["fixture"] == "false"
    fixture = by_id[catalogue.occurrences[(night, "F")]]
    assert (fixture["fixture"], fixture["fixture_reason"]) == ("true", "same place every night")
    kept = read(occurrences_csv.export_occurrences(
        ExportRun.start(catalogue.db, ExportScope(), Thresholds()), out,
        min_detection_score=0.5, min_label_score=0.5).path)
    assert {r["label"] for r in kept} == {"Noctua pronuba", "nonmoth"}
    no_fixtures = read(occurrences_csv.export_occurrences(
        ExportRun.start(catalogue.db, ExportScope(), Thresholds()), out,
        include_fixtures=False).path)
    assert len(no_fixtures) == 9 and {r["fixture"] for r in no_fixtures} == {"false"}


def test_detections_csv_links_each_detection_to_its_individual(catalogue, tmp_path):
    out = tmp_path / "detections.csv"
    result = run_export(catalogue.db, ExportRequest("detections", out))
    rows = read(out)
    assert len(rows) == 24 and result.rows == {"detections": 24}
    occurrence_of = {int(r["detection_id"]): r["occurrence_id"] for r in rows}
    assert all(occurrence_of.values())
    fixtures = [r for r in rows if r["fixture"] == "true"]
    assert len(fixtures) == 6 and {r["label"] for r in fixtures} == {"nonmoth"}
    assert {r["classification_method"] for r in rows} == {"machine"}
    a = next(r for r in rows if r["label"] == "Noctua pronuba")
    assert (a["identified_by"], a["machine_label"], a["machine_score"]) == (
        "Quebec & Vermont species v2", "Noctua pronuba", "0.8")
    assert a["capture_time"].endswith(("-04:00", "-05:00"))  # the trap's camera clock
    about = json.loads((tmp_path / "detections-about.json").read_text())
    assert about["format"] == "detections" and about["pipeline"]["name"] == "builtin + bin + sp"
    assert about["rows"] == {"detections": 24}
