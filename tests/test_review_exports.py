"""A person's labels in every export: Camtrap DP (validated against the published standard),
Darwin Core (HumanObservation, identifiedBy), the occurrences and detections CSVs: final label,
method, who and when, and the machine's label with its score beside it."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from tests import export_fixtures as ef
from tests.camtrap_validation import no_network, validate
from trapgui.db import counts as db_counts
from trapgui.db import review_store
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.export import occurrences_csv
from trapgui.export.camtrap_dp import export_camtrap_dp
from trapgui.export.common import ExportRun
from trapgui.export.csv_export import export_detections
from trapgui.export.darwin_core import export_darwin_core

pytestmark = pytest.mark.usefixtures("no_network")
__all__ = ["no_network"]
ME = "Ada Reviewer"


def read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def reviewed(db, trap_copy):
    """On the first night: A (Noctua, 0.8) confirmed, B (Xestia at 0.3, below the threshold)
    relabelled as a morphospecies; on the second night A rejected as not an insect ("R")."""
    cat = ef.build(db, trap_copy)
    night, second = sorted({n for n, _ in cat.occurrences})[:2]
    occ = {k: cat.occurrences[(night, k)] for k in "AB"}
    occ["R"] = cat.occurrences[(second, "A")]
    review_store.confirm(db, [occ["A"]], ME)
    review_store.relabel(db, [occ["B"]], "Noctuidae sp. A", None, ME)
    review_store.reject(db, [occ["R"]], ME)
    return cat, night, occ


def _run(cat, thresholds=Thresholds()):
    return ExportRun.start(cat.db, ExportScope(), thresholds)


def test_camtrap_dp_rows_carry_the_reviewers_label_and_the_machines(reviewed, tmp_path):
    cat, night, occ = reviewed
    out = tmp_path / "package"
    export_camtrap_dp(_run(cat), out)
    assert validate(out) == []
    obs = read(out / "observations.csv")
    events = {o["eventID"]: o for o in obs if o["observationLevel"] == "event"}
    b = events[f"occ{occ['B']}"]
    assert (b["observationType"], b["scientificName"], b["classificationMethod"],
            b["classifiedBy"]) == ("animal", "Noctuidae", "human", ME)
    assert b["classificationTimestamp"].endswith("Z") and b["classificationProbability"] == ""
    assert "machineLabel:Xestia c-nigrum" in b["observationTags"]
    assert "machineScore:0.3" in b["observationTags"]
    assert "identification qualifier: sp. A" in b["observationComments"]
    a = events[f"occ{occ['A']}"]
    assert (a["classificationMethod"], a["classifiedBy"], a["scientificName"]) == (
        "human", ME, "Noctua pronuba")
    assert "machineLabel:Noctua pronuba" in a["observationTags"]
    # the others stay the machine's
    others = [o for k, o in events.items() if k not in (f"occ{occ['A']}", f"occ{occ['B']}")]
    assert {o["classificationMethod"] for o in others} <= {"machine", ""}
    # the rejected one is in no table, and the events still are the individual counts
    assert f"occ{occ['R']}" not in events
    assert not [o for o in obs if o["eventID"] == f"occ{occ['R']}"]
    counted = db_counts.count_individuals(cat.db, ExportScope(), cat.pipeline_id, Thresholds())
    assert len(events) == sum(c.individuals for c in counted)
    media_b = [o for o in obs if o["observationLevel"] == "media" and o["eventID"] == f"occ{occ['B']}"]
    assert media_b and {(o["classificationMethod"], o["classifiedBy"], o["scientificName"])
                        for o in media_b} == {("human", ME, "Noctuidae")}
    assert all("machineLabel:" in o["observationTags"] for o in media_b)


def test_darwin_core_says_human_observation_after_review(reviewed, tmp_path):
    cat, night, occ = reviewed
    out = tmp_path / "dwc.zip"
    export_darwin_core(_run(cat), out)
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("occurrence.csv").decode("utf-8"))))
    present = [r for r in rows if r["occurrenceStatus"] == "present"]
    human = [r for r in present if r["basisOfRecord"] == "HumanObservation"]
    assert {(r["scientificName"], r["identificationQualifier"], r["identifiedBy"])
            for r in human} == {("Noctua pronuba", "", ME), ("Noctuidae", "sp. A", ME)}
    noctuidae = next(r for r in human if r["scientificName"] == "Noctuidae")
    assert noctuidae["taxonRank"] == "family" and noctuidae["individualCount"] == "1"
    assert "machine label when reviewed: Xestia c-nigrum (1)" in noctuidae["identificationRemarks"]
    machine = [r for r in present if r["basisOfRecord"] == "MachineObservation"]
    assert machine and all(r["identifiedBy"] != ME for r in machine)
    # one number: the records add up to the counting query (the rejected one left out)
    counted = db_counts.count_individuals(cat.db, ExportScope(), cat.pipeline_id, Thresholds())
    assert sum(int(r["individualCount"]) for r in present) == sum(c.individuals for c in counted)
    assert sum(c.human_identified for c in counted) == 2


def test_csv_exports_carry_method_reviewer_and_machine_label(reviewed, tmp_path):
    cat, night, occ = reviewed
    rows = {int(r["occurrence_id"]): r for r in read(occurrences_csv.export_occurrences(
        _run(cat), tmp_path / "occ.csv").path)}
    b = rows[occ["B"]]
    assert (b["label"], b["label_rank"], b["label_score"], b["classification_method"],
            b["identified_by"], b["machine_label"], b["machine_rank"], b["machine_score"]) == (
        "Noctuidae sp. A", "morphospecies", "", "human", ME, "Xestia c-nigrum", "species", "0.3")
    assert occ["R"] not in rows and occ["A"] in rows
    dets = read(export_detections(cat.db, tmp_path / "det.csv").path)
    # the detections CSV lists every detection: the rejected ones without a label, by a person
    rejected = [d for d in dets if d["occurrence_id"] == str(occ["R"])]
    assert rejected and {(d["label"], d["classification_method"], d["identified_by"],
                          d["machine_label"]) for d in rejected} == {
        ("", "human", ME, "Noctua pronuba")}
    mine = [d for d in dets if d["occurrence_id"] == str(occ["B"])]
    assert mine and {(d["label"], d["classification_method"], d["identified_by"],
                      d["machine_label"]) for d in mine} == {
        ("Noctuidae sp. A", "human", ME, "Xestia c-nigrum")}
    # a classification threshold above every machine score keeps the person's labels
    strict = read(occurrences_csv.export_occurrences(
        _run(cat), tmp_path / "strict.csv", min_label_score=0.99).path)
    assert {r["label"] for r in strict if r["classification_method"] == "human"} == {
        "Noctua pronuba", "Noctuidae sp. A"}
