"""Camtrap DP 1.0.2 export, validated offline against the published standard in
../shared/standards/camtrap-dp-1.0.2 (profile with jsonschema, tables with frictionless), with
the standard's own example as the known-good case and broken packages that must fail."""

from __future__ import annotations

import csv
import json
import shutil
import threading

import pytest
from sqlalchemy import update

from tests import export_fixtures as ef
from tests.camtrap_validation import STANDARD, no_network, profile_errors, table_errors, validate
from trapgui.core.errors import Cancelled, UserInputError
from trapgui.core.jobs import JobControl
from trapgui.db import counts as db_counts
from trapgui.db import jobqueue
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.tables import Image
from trapgui.export.camtrap_dp import export_camtrap_dp
from trapgui.export.camtrap_dp_package import CamtrapOptions, Contributor
from trapgui.export.common import ExportRun

pytestmark = pytest.mark.usefixtures("no_network")
__all__ = ["no_network"]


def read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def catalogue(db, trap_copy):
    return ef.build(db, trap_copy)


def export(cat, out, options=CamtrapOptions(), scope=ExportScope(), thresholds=Thresholds(),
           control=None):
    run = ExportRun.start(cat.db, scope, thresholds, control=control)
    return export_camtrap_dp(run, out, options)


# ---- the validator itself ------------------------------------------------------------------
def test_the_standards_own_example_is_valid():
    assert validate(STANDARD / "example") == []


def test_broken_packages_fail(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(STANDARD / "example", broken)
    descriptor = json.loads((broken / "datapackage.json").read_text())
    del descriptor["project"]
    descriptor["resources"][0]["profile"] = "data-resource"
    (broken / "datapackage.json").write_text(json.dumps(descriptor))
    problems = profile_errors(descriptor)
    assert any("'project' is a required property" in p for p in problems)
    assert any("resources/0" in p for p in problems)
    text = (broken / "deployments.csv").read_text()
    (broken / "deployments.csv").write_text(text.replace(",51.496,4.774,", ",95,4.774,", 1))
    media = (broken / "media.csv").read_text().splitlines()
    media[1] = media[1].replace("2020-05-30T04:57:37+02:00", "2020-05-30 04:57:37")
    (broken / "media.csv").write_text("\n".join(media) + "\n")
    errors = table_errors(broken)
    assert any("deployments" in e and "constraint" in e and "latitude" in e for e in errors)
    assert any("media" in e and "type-error" in e and "timestamp" in e for e in errors)


def test_no_test_reaches_the_network():
    import urllib.request

    with pytest.raises(AssertionError, match="reach the network"):
        urllib.request.urlopen("https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/"
                               "camtrap-dp-profile.json", timeout=5)


# ---- our package ---------------------------------------------------------------------------
def test_export_is_a_valid_package(catalogue, tmp_path):
    out = tmp_path / "package"
    result = export(catalogue, out, CamtrapOptions(
        title="Moths of two traps", contributors=(Contributor.parse("Ada Lovelace <ada@x.org>"),
                                                  Contributor.parse("Lab <lab@x.org> publisher")),
        data_license="CC0-1.0", media_license="CC-BY-4.0"))
    assert validate(out) == []
    assert sorted(p.name for p in out.iterdir()) == [
        ".trapgui-export", "datapackage.json", "deployments.csv", "media.csv",
        "observations.csv"]
    assert result.rows == {"deployments": 2, "media": 7, "observations": 19}
    package = json.loads((out / "datapackage.json").read_text())
    assert package["profile"].endswith("/1.0.2/camtrap-dp-profile.json")
    # stated, not sniffed: a sniffer takes the "|" of tag lists for the delimiter in big files
    assert {r["dialect"]["delimiter"] for r in package["resources"]} == {","}
    assert package["project"]["captureMethod"] == ["timeLapse"]
    assert package["project"]["observationLevel"] == ["media", "event"]
    assert package["contributors"][1] == {"title": "Lab", "role": "publisher",
                                          "email": "lab@x.org"}
    assert package["taxonomic"] == [{"scientificName": "Noctua pronuba", "taxonRank": "species"}]
    assert package["temporal"] == {"start": "2022-06-22", "end": "2023-11-11"}
    assert package["spatial"]["type"] == "Polygon"
    about = package["trapgui"]
    assert about["thresholds"] == {"detection_score": 0.5, "label_score": 0.5}
    assert about["pipeline"]["config"]["species"] == "sp"
    assert about["processing_runs"][0]["models"]["sp"]["version"] == "v2"
    assert about["app"]["name"] == "trapgui" and about["app"]["version"]


def test_rows_follow_the_standard(catalogue, tmp_path):
    out = tmp_path / "package"
    export(catalogue, out)
    deployments = {d["deploymentID"]: d for d in read(out / "deployments.csv")}
    vermont = deployments[ef.trap_uid(catalogue.db, catalogue.traps["vermont"])]
    assert (vermont["latitude"], vermont["longitude"], vermont["coordinateUncertainty"]) == (
        "44.4759", "-73.2121", "13")  # 12.5 m rounded up: the standard wants whole metres
    assert vermont["deploymentStart"] == "2022-06-22T00:04:59-04:00"
    assert vermont["deploymentEnd"] == "2022-06-23T04:30:00-04:00"
    assert vermont["locationName"] == "Burlington garden" and vermont["baitUse"] == "false"
    assert "Light: LepiLED 15 W" in vermont["deploymentComments"]
    assert vermont["timestampIssues"] == "false"
    media = {m["mediaID"]: m for m in read(out / "media.csv")}
    assert len(media) == 7 and {m["captureMethod"] for m in media.values()} == {"timeLapse"}
    panama_first = media[f"m{catalogue.images['01-20231110214539-snapshot.jpg']}"]
    assert panama_first["timestamp"] == "2023-11-10T21:45:39-05:00"
    assert panama_first["filePath"].startswith("file:///") and panama_first["filePublic"] == \
        "false"
    obs = read(out / "observations.csv")
    events = [o for o in obs if o["observationLevel"] == "event"]
    media_obs = [o for o in obs if o["observationLevel"] == "media"]
    # one event per counted individual: A and B of each of the 3 nights (no fixture, no faint)
    assert len(events) == 6 and all(o["individualID"] == o["eventID"] for o in events)
    assert {o["observationType"] for o in events} == {"animal", "unknown"}
    animal = [o for o in events if o["observationType"] == "animal"]
    assert {o["scientificName"] for o in animal} == {"Noctua pronuba"}
    assert {o["classificationMethod"] for o in animal} == {"machine"}
    assert {o["classifiedBy"] for o in animal} == {"Quebec & Vermont species v2"}
    unknown = [o for o in events if o["observationType"] == "unknown"]
    assert all(o["scientificName"] == "" and "below the classification threshold 0.5"
               in o["observationComments"] for o in unknown)
    blanks = [o for o in media_obs if o["observationType"] == "blank"]
    assert [o["mediaID"] for o in blanks] == [f"m{catalogue.images[ef.BLANK]}"]
    boxes = [o for o in media_obs if o["observationType"] != "blank"]
    assert len(boxes) == 12  # A and B in 6 non-empty images
    a_box = next(o for o in boxes if o["scientificName"] == "Noctua pronuba")
    assert (a_box["bboxX"], a_box["bboxY"], a_box["bboxWidth"], a_box["bboxHeight"]) == (
        "0.097656", "0.092593", "0.195312", "0.185185")  # (100, 50, 200 x 100) of 1024 x 540
    linked = {o["eventID"] for o in boxes}
    assert linked == {o["eventID"] for o in events}  # every detection points to its individual


def test_event_observations_are_the_individual_counts(catalogue, tmp_path):
    """One number: summing the event-level observations gives count_individuals."""
    for thresholds in (Thresholds(), Thresholds(0.1, 0.2)):
        out = tmp_path / f"p{thresholds.label}"
        export(catalogue, out, thresholds=thresholds)
        events = [o for o in read(out / "observations.csv") if o["observationLevel"] == "event"]
        counted = db_counts.count_individuals(catalogue.db, ExportScope(),
                                              catalogue.pipeline_id, thresholds)
        assert len(events) == sum(c.individuals for c in counted)
        named = sum(c.individuals for c in counted if c.label == "Noctua pronuba")
        assert sum(o["scientificName"] == "Noctua pronuba" for o in events) == named


def test_times_from_file_dates_are_flagged(catalogue, tmp_path):
    image = catalogue.images["20220622200400-01-snapshot.jpg"]
    with catalogue.db.write_session() as s:
        s.execute(update(Image).where(Image.id == image).values(time_source="file_mtime"))
    out = tmp_path / "package"
    export(catalogue, out)
    deployments = {d["locationName"]: d for d in read(out / "deployments.csv")}
    assert deployments["Burlington garden"]["timestampIssues"] == "true"
    assert deployments["Barro Colorado Island"]["timestampIssues"] == "false"
    media = {m["mediaID"]: m for m in read(out / "media.csv")}
    assert "modification time" in media[f"m{image}"]["mediaComments"]
    assert validate(out) == []


def test_missing_coordinates_or_clock_stop_with_a_sentence(db, trap_copy, tmp_path):
    cat = ef.build(db, trap_copy, metadata=False)
    with pytest.raises(UserInputError) as err:
        export(cat, tmp_path / "p")
    text = str(err.value)
    assert "trap 'panama'" in text and "trap 'vermont'" in text
    assert "coordinates (--latitude, --longitude)" in text and "time zone (--timezone)" in text
    assert "trapgui trap set" in text
    assert not (tmp_path / "p").exists()


def test_several_pipelines_must_be_chosen(catalogue, tmp_path):
    other = jobqueue.get_or_create_pipeline(catalogue.db, "p2", "builtin only", {"x": 2})
    jobqueue.enqueue(catalogue.db, other, list(catalogue.images.values()))
    claimed = jobqueue.claim(catalogue.db, other, "w2", 100, 60)
    from trapgui.core.types import ImageResult

    jobqueue.complete(catalogue.db, other, None, "w2", [ImageResult(c.image_id) for c in claimed])
    with pytest.raises(UserInputError, match="2 model configurations"):
        export(catalogue, tmp_path / "p")
    export(catalogue, tmp_path / "p", scope=ExportScope(pipeline_id=catalogue.pipeline_id))
    assert validate(tmp_path / "p") == []


def test_selection_of_traps_and_nights(catalogue, tmp_path):
    out = tmp_path / "p"
    result = export(catalogue, out, scope=ExportScope.of([catalogue.traps["panama"]]))
    assert result.rows["deployments"] == 1 and result.rows["media"] == 4
    assert validate(out) == []
    package = json.loads((out / "datapackage.json").read_text())
    assert package["spatial"] == {"type": "Point", "coordinates": [-79.8467, 9.1521]}


def test_target_folder_rules_and_cancel(catalogue, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(UserInputError, match="not empty and was not written by a trapgui"):
        export(catalogue, foreign)
    assert (foreign / "thesis.docx").read_text() == "precious"
    out = tmp_path / "again"
    export(catalogue, out)
    first = (out / "datapackage.json").read_text()
    export(catalogue, out)  # an earlier export is replaced
    assert (out / "datapackage.json").read_text() != first
    control = JobControl()
    control.cancel()
    with pytest.raises(Cancelled):
        export(catalogue, tmp_path / "cancelled", control=control)
    with pytest.raises(Cancelled):
        export(catalogue, out, control=control)
    assert not (tmp_path / "cancelled").exists()
    assert (out / "datapackage.json").exists() and validate(out) == []  # old one intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(UserInputError, match="does not exist"):
        export(catalogue, tmp_path / "no" / "such")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        export(catalogue, tmp_path / "file")


def test_options_are_checked():
    with pytest.raises(UserInputError, match="both"):
        CamtrapOptions(data_license="CC0-1.0")
    with pytest.raises(UserInputError, match="sampling design"):
        CamtrapOptions(sampling_design="random")
    with pytest.raises(UserInputError, match="role"):
        Contributor.parse("Ada <a@b.c> boss")
    with pytest.raises(UserInputError, match="scheme"):
        CamtrapOptions(media_url="www.example.org/photos")


def test_hosted_media(catalogue, tmp_path):
    out = tmp_path / "p"
    export(catalogue, out, CamtrapOptions(media_url="https://photos.example.org/traps/"))
    media = read(out / "media.csv")
    assert media[0]["filePath"].startswith("https://photos.example.org/traps/panama/01-2023")
    assert {m["filePublic"] for m in media} == {"true"}
    assert validate(out) == []


def test_progress_events(catalogue, tmp_path):
    from trapgui.core.jobs import EventLog, Progress

    log = EventLog()
    run = ExportRun.start(catalogue.db, ExportScope(), Thresholds(), log)
    export_camtrap_dp(run, tmp_path / "p")
    done = [e.done for e in log.of(Progress)]
    assert done == sorted(done) and log.of(Progress)[-1].done == log.of(Progress)[-1].total


def test_parallel_exports_do_not_collide(catalogue, tmp_path):
    errors = []

    def one(i):
        try:
            export(catalogue, tmp_path / f"p{i}")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert all(validate(tmp_path / f"p{i}") == [] for i in range(2))
