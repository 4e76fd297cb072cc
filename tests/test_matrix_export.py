"""Individuals per taxon per night: the counting query (one number everywhere), the species x
night matrix (zeros included, effort columns) and the long summary with detections and MaxN."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import insert, select, update

from tests import export_fixtures as ef
from trapgui.core.errors import UserInputError
from trapgui.db import counts as db_counts
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.tables import Detection, Job, Night, Occurrence
from trapgui.export.common import ExportRun
from trapgui.export.matrix import NOT_IDENTIFIED, export_matrix, export_summary


def read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def catalogue(db, trap_copy):
    return ef.build(db, trap_copy)


def counts(cat, thresholds=Thresholds(), scope=ExportScope()):
    return db_counts.count_individuals(cat.db, scope, cat.pipeline_id, thresholds)


def test_counting_rules(catalogue):
    got = counts(catalogue)
    assert {(c.label, c.individuals) for c in got} == {("Noctua pronuba", 1), (None, 1)}
    assert len(got) == 6  # 3 nights x (Noctua, not identified); fixture and faint box out
    vermont_night = next(c for c in got if c.label == "Noctua pronuba" and c.detections == 2)
    assert vermont_night.max_n == 1 and vermont_night.human_identified == 0
    # lower detection threshold: the faint box's individual counts (label "moth", binary)
    low = counts(catalogue, Thresholds(0.1, 0.5))
    assert {c.label for c in low} == {"Noctua pronuba", None, "moth"}
    # lower classification threshold: B is identified
    assert {c.label for c in counts(catalogue, Thresholds(0.5, 0.2))} == {
        "Noctua pronuba", "Xestia c-nigrum"}
    # a fixture never counts, whatever the thresholds
    assert "nonmoth" not in {c.label for c in counts(catalogue, Thresholds(0.0, 0.0))}


def test_max_n_is_the_most_individuals_in_one_image(catalogue):
    """A second Noctua in panama's first image: 2 individuals, MaxN 2 on that night."""
    db = catalogue.db
    with db.write_session() as s:
        night = s.execute(select(Night.id).where(
            Night.deployment_id == catalogue.traps["panama"])).scalar_one()
        occ = s.execute(insert(Occurrence).values(
            pipeline_id=catalogue.pipeline_id, deployment_id=catalogue.traps["panama"],
            night_id=night, n_detections=1, label="Noctua pronuba", label_rank="species",
            label_score=0.9).returning(Occurrence.id)).scalar_one()
        s.execute(insert(Detection).values(
            image_id=catalogue.images["01-20231110214539-snapshot.jpg"],
            pipeline_id=catalogue.pipeline_id, x1=700, y1=100, x2=760, y2=150, score=0.9,
            detector="builtin", top_label="Noctua pronuba", top_score=0.9, top_rank="species",
            occurrence_id=occ))
    got = {(c.night_id, c.label): c for c in counts(catalogue)}
    panama = got[(night, "Noctua pronuba")]
    assert (panama.individuals, panama.detections, panama.max_n) == (2, 4, 2)


def test_matrix(catalogue, tmp_path):
    out = tmp_path / "matrix.csv"
    result = export_matrix(ExportRun.start(catalogue.db, ExportScope(), Thresholds()), out)
    rows = read(out)
    assert list(rows[0])[:14] == ["trap", "trap_id", "night", "first_image", "last_image",
                                  "hours", "images", "processed", "failed", "unreadable",
                                  "waiting", "missing", "complete", "individuals"]
    assert list(rows[0])[14:] == ["Noctua pronuba", NOT_IDENTIFIED]
    night = next(r for r in rows if r["night"] == "2022-06-22")
    assert (night["hours"], night["images"], night["processed"], night["complete"]) == (
        "8.433", "2", "2", "true")
    assert night["first_image"] == "2022-06-22T20:04:00-04:00"
    assert (night["individuals"], night["Noctua pronuba"], night[NOT_IDENTIFIED]) == (
        "2", "1", "1")
    assert result.rows == {"nights": 3, "taxa": 2}
    about = json.loads(result.about_path.read_text())
    assert result.about_path.name == "matrix-about.json"
    assert about["counting"].startswith("Individuals are occurrences")


def test_zeros_and_nights_not_sampled(catalogue, tmp_path):
    db = catalogue.db
    with db.session() as s:
        panama = s.execute(select(Night.id).where(
            Night.deployment_id == catalogue.traps["panama"])).scalar_one()
    with db.write_session() as s:  # panama's Noctua was really a Xestia (identified)
        s.execute(update(Occurrence).where(Occurrence.id == catalogue.occurrences[(panama, "A")])
                  .values(label="Xestia c-nigrum", label_score=0.9))
        # and vermont's first night was never processed
        s.execute(update(Job).where(Job.image_id == catalogue.images[
            "20220622000459-108-snapshot.jpg"]).values(state="pending"))
    out = tmp_path / "m.csv"
    export_matrix(ExportRun.start(db, ExportScope(), Thresholds()), out)
    rows = {r["night"]: r for r in read(out)}
    assert rows["2023-11-10"]["Noctua pronuba"] == "0" and rows["2023-11-10"]["Xestia c-nigrum"] \
        == "1"
    assert rows["2022-06-22"]["Xestia c-nigrum"] == "0"  # a zero: sampled, none
    not_sampled = rows["2022-06-21"]
    assert not_sampled["processed"] == "0" and not_sampled["complete"] == "false"
    assert not_sampled["Noctua pronuba"] == "" and not_sampled["individuals"] == ""
    summary = tmp_path / "s.csv"
    export_summary(ExportRun.start(db, ExportScope(), Thresholds()), summary)
    srows = read(summary)
    assert {r["night"] for r in srows} == {"2022-06-22", "2023-11-10"}  # sampled nights only
    assert len(srows) == 2 * 3  # every taxon on every sampled night
    zero = next(r for r in srows if r["night"] == "2022-06-22" and r["taxon"] == "Xestia c-nigrum")
    assert (zero["individuals"], zero["detections"], zero["max_n"], zero["rank"]) == (
        "0", "0", "0", "species")


def test_summary_matches_the_counting_query(catalogue, tmp_path):
    out = tmp_path / "s.csv"
    export_summary(ExportRun.start(catalogue.db, ExportScope(), Thresholds(0.1, 0.2)), out)
    rows = read(out)
    total = sum(int(r["individuals"]) for r in rows)
    assert total == sum(c.individuals for c in counts(catalogue, Thresholds(0.1, 0.2)))
    assert sum(int(r["detections"]) for r in rows) == sum(
        c.detections for c in counts(catalogue, Thresholds(0.1, 0.2)))


def test_untracked_detections_are_announced(catalogue, tmp_path):
    with catalogue.db.write_session() as s:
        s.execute(update(Detection).where(Detection.occurrence_id == catalogue.occurrences[
            next(k for k in catalogue.occurrences if k[1] == "A")]).values(occurrence_id=None))
    result = export_matrix(ExportRun.start(catalogue.db, ExportScope(), Thresholds()),
                           tmp_path / "m.csv")
    assert any("belong to no individual" in n and "Run tracking" in n for n in result.notes)


def test_nothing_to_export(db, tmp_path):
    with pytest.raises(UserInputError, match="no image of the selection has been processed"):
        export_matrix(ExportRun.start(db, ExportScope(), Thresholds()), tmp_path / "m.csv")
