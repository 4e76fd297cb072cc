"""Darwin Core Archive: meta.xml parsed back (every column a real Darwin Core / Dublin Core term,
files and columns agree), events with effort, individual counts per taxon per event, absences,
and the EML metadata."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select, update

from tests import export_fixtures as ef
from trapgui.core.errors import UserInputError
from trapgui.db import counts as db_counts
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.tables import Night, Occurrence
from trapgui.export.camtrap_dp_package import Contributor
from trapgui.export.common import ExportRun
from trapgui.export.darwin_core import DwcOptions, export_darwin_core

# Term names of Darwin Core (namespace http://rs.tdwg.org/dwc/terms/) as published by TDWG in
# tdwg/dwc dist/dwc_occurrence_core_horizontal.csv and dwc_event_core_horizontal.csv (the
# Occurrence and Event core term lists), and the Dublin Core terms those lists use.
DC_TERMS = {"type", "modified", "language", "license", "rightsHolder", "accessRights",
            "bibliographicCitation", "references"}
DWC_TERMS = set("""
institutionID collectionID datasetID institutionCode collectionCode datasetName
ownerInstitutionCode basisOfRecord informationWithheld dataGeneralizations dynamicProperties
occurrenceID catalogNumber recordNumber recordedBy recordedByID individualCount
organismQuantity organismQuantityType sex lifeStage reproductiveCondition caste behavior
vitality establishmentMeans degreeOfEstablishment pathway georeferenceVerificationStatus
occurrenceStatus associatedMedia associatedOccurrences associatedReferences associatedTaxa
otherCatalogNumbers occurrenceRemarks organismID organismName organismScope
associatedOrganisms previousIdentifications organismRemarks materialEntityID
eventID parentEventID eventType fieldNumber eventDate eventTime startDayOfYear endDayOfYear
year month day verbatimEventDate habitat samplingProtocol sampleSizeValue sampleSizeUnit
samplingEffort fieldNotes eventRemarks locationID higherGeographyID higherGeography continent
waterBody islandGroup island country countryCode stateProvince county municipality locality
verbatimLocality minimumElevationInMeters maximumElevationInMeters verbatimElevation
verticalDatum minimumDepthInMeters maximumDepthInMeters verbatimDepth
minimumDistanceAboveSurfaceInMeters maximumDistanceAboveSurfaceInMeters locationAccordingTo
locationRemarks decimalLatitude decimalLongitude geodeticDatum coordinateUncertaintyInMeters
coordinatePrecision pointRadiusSpatialFit verbatimCoordinates verbatimLatitude
verbatimLongitude verbatimCoordinateSystem verbatimSRS footprintWKT footprintSRS
footprintSpatialFit georeferencedBy georeferencedDate georeferenceProtocol georeferenceSources
georeferenceRemarks identificationID verbatimIdentification identificationQualifier typeStatus
identifiedBy identifiedByID dateIdentified identificationReferences
identificationVerificationStatus identificationRemarks taxonID scientificNameID
acceptedNameUsageID parentNameUsageID originalNameUsageID nameAccordingToID namePublishedInID
taxonConceptID scientificName acceptedNameUsage parentNameUsage originalNameUsage
nameAccordingTo namePublishedIn namePublishedInYear higherClassification kingdom phylum class
order superfamily family subfamily tribe subtribe genus genericName subgenus
infragenericEpithet specificEpithet infraspecificEpithet cultivarEpithet taxonRank
verbatimTaxonRank scientificNameAuthorship vernacularName nomenclaturalCode taxonomicStatus
nomenclaturalStatus taxonRemarks
""".split())
DWC_NS, DC_NS = "http://rs.tdwg.org/dwc/terms/", "http://purl.org/dc/terms/"
TEXT_NS = "{http://rs.tdwg.org/dwc/text/}"
ROW_TYPES = {DWC_NS + "Event", DWC_NS + "Occurrence"}


@pytest.fixture
def catalogue(db, trap_copy):
    return ef.build(db, trap_copy)


def export(cat, out, options=DwcOptions(), thresholds=Thresholds(), scope=ExportScope()):
    return export_darwin_core(ExportRun.start(cat.db, scope, thresholds), out, options)


def tables(path) -> dict[str, list[dict]]:
    with zipfile.ZipFile(path) as zf:
        return {name: list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"),
                                                      newline="")))
                for name in zf.namelist() if name.endswith(".csv")}


def test_meta_xml_maps_every_column_to_a_real_term(catalogue, tmp_path):
    out = tmp_path / "dwc.zip"
    export(catalogue, out)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        root = ET.fromstring(zf.read("meta.xml"))
        assert root.tag == TEXT_NS + "archive" and root.get("metadata") in names
        sections = root.findall(TEXT_NS + "core") + root.findall(TEXT_NS + "extension")
        assert [s.tag for s in sections] == [TEXT_NS + "core", TEXT_NS + "extension"]
        for section in sections:
            assert section.get("rowType") in ROW_TYPES
            assert section.get("encoding") == "UTF-8" and section.get("ignoreHeaderLines") == "1"
            location = section.find(f"{TEXT_NS}files/{TEXT_NS}location").text
            assert location in names
            raw = zf.read(location).decode("utf-8")
            assert section.get("linesTerminatedBy") == "\\r\\n" and raw.endswith("\r\n")
            header = next(csv.reader(io.StringIO(raw, newline="")))
            fields = section.findall(TEXT_NS + "field")
            indices = [int(f.get("index")) for f in fields]
            assert indices == list(range(len(header)))  # every column mapped, in order
            for f in fields:
                term = f.get("term")
                ns, name = term.rsplit("/", 1)[0] + "/", term.rsplit("/", 1)[1]
                assert (ns == DWC_NS and name in DWC_TERMS) or (ns == DC_NS and name in DC_TERMS), \
                    term
                assert header[int(f.get("index"))] == name
            key = section.find(TEXT_NS + ("id" if section.tag.endswith("core") else "coreid"))
            assert header[int(key.get("index"))] == "eventID"
        ET.fromstring(zf.read("eml.xml"))  # well-formed


def test_the_checker_refuses_an_unknown_term():
    assert "individualcount" not in DWC_TERMS and "individualCount" in DWC_TERMS
    assert "samplingEffort" in DWC_TERMS and "nightOfTrap" not in DWC_TERMS


def test_events_with_effort(catalogue, tmp_path):
    out = tmp_path / "dwc.zip"
    result = export(catalogue, out)
    events = tables(out)["event.csv"]
    assert result.rows["events"] == len(events) == 3  # trap-nights with processed images
    by_day = {e["eventID"].rsplit(":", 1)[1]: e for e in events}
    night = by_day["2022-06-22"]
    assert night["eventDate"] == "2022-06-22T20:04:00-04:00/2022-06-23T04:30:00-04:00"
    assert (night["year"], night["month"], night["day"]) == ("2022", "6", "22")
    assert (night["sampleSizeValue"], night["sampleSizeUnit"]) == ("8.43", "hour")
    assert night["samplingEffort"] == "2 images taken over 8.43 h, 2 processed"
    assert "light: LepiLED 15 W" in night["samplingProtocol"]
    assert "detection score 0.5" in night["samplingProtocol"]
    assert (night["decimalLatitude"], night["decimalLongitude"], night["geodeticDatum"]) == (
        "44.4759", "-73.2121", "WGS84")
    assert night["locality"] == "Burlington garden"
    panama = by_day["2023-11-10"]
    assert panama["eventDate"].endswith("-05:00") and panama["sampleSizeValue"] == "5.69"
    assert len({e["eventID"] for e in events}) == 3


def test_individual_counts_per_taxon_per_event(catalogue, tmp_path):
    out = tmp_path / "dwc.zip"
    export(catalogue, out)
    t = tables(out)
    events = {e["eventID"] for e in t["event.csv"]}
    occ = t["occurrence.csv"]
    assert {o["eventID"] for o in occ} <= events
    assert len({o["occurrenceID"] for o in occ}) == len(occ)
    counted = db_counts.count_individuals(catalogue.db, ExportScope(), catalogue.pipeline_id,
                                          Thresholds())
    present = [o for o in occ if o["occurrenceStatus"] == "present"]
    assert sum(int(o["individualCount"]) for o in present) == \
        sum(c.individuals for c in counted) == 6
    noctua = [o for o in present if o["scientificName"] == "Noctua pronuba"]
    assert len(noctua) == 3 and all(o["individualCount"] == "1" for o in noctua)
    assert {o["basisOfRecord"] for o in present} == {"MachineObservation"}
    assert {o["identifiedBy"] for o in noctua} == {"Quebec & Vermont species v2"}
    assert {o["taxonRank"] for o in noctua} == {"species"} and noctua[0]["kingdom"] == "Animalia"
    unidentified = [o for o in present if o["scientificName"] == "Arthropoda"]
    assert len(unidentified) == 3 and unidentified[0]["taxonRank"] == "phylum"
    assert "not identified" in unidentified[0]["identificationRemarks"]
    assert "MaxN" in unidentified[0]["occurrenceRemarks"]


def test_absences_for_the_exports_taxa(catalogue, tmp_path):
    # on panama's night the first individual was another species: Noctua is absent there, and
    # Agrotis absent on vermont's nights
    with catalogue.db.session() as s:
        panama_night = s.execute(select(Night.id).where(
            Night.deployment_id == catalogue.traps["panama"])).scalar_one()
    with catalogue.db.write_session() as s:
        s.execute(update(Occurrence).where(
            Occurrence.id == catalogue.occurrences[(panama_night, "A")]).values(
            label="Agrotis ipsilon"))
    out = tmp_path / "dwc.zip"
    export(catalogue, out)
    occ = tables(out)["occurrence.csv"]
    absent = [o for o in occ if o["occurrenceStatus"] == "absent"]
    assert sorted((o["eventID"].rsplit(":", 1)[1], o["scientificName"]) for o in absent) == [
        ("2022-06-21", "Agrotis ipsilon"), ("2022-06-22", "Agrotis ipsilon"),
        ("2023-11-10", "Noctua pronuba")]
    assert all(o["individualCount"] == "0" for o in absent)
    assert not any(o["scientificName"] == "Arthropoda" for o in absent)  # no taxon
    export(catalogue, out, DwcOptions(absences="none"))
    assert {o["occurrenceStatus"] for o in tables(out)["occurrence.csv"]} == {"present"}
    with pytest.raises(UserInputError, match="--absences"):
        DwcOptions(absences="all")


def test_thresholds_change_the_counts_and_are_stated(catalogue, tmp_path):
    out = tmp_path / "dwc.zip"
    result = export(catalogue, out, DwcOptions(title="Two traps", license="CC-BY-4.0",
                                               contributors=(Contributor.parse("Ada <a@b.org>"),)),
                    thresholds=Thresholds(0.5, 0.2))
    occ = tables(out)["occurrence.csv"]
    names = {o["scientificName"] for o in occ if o["occurrenceStatus"] == "present"}
    assert names == {"Noctua pronuba", "Xestia c-nigrum"}  # B counts at 0.2
    about = json.loads(result.about_path.read_text())
    assert about["thresholds"] == {"detection_score": 0.5, "label_score": 0.2}
    assert about["format"] == "dwc" and about["processing_runs"]
    with zipfile.ZipFile(out) as zf:
        eml = ET.fromstring(zf.read("eml.xml"))
    assert eml.find("dataset/title").text == "Two traps"
    assert eml.find("dataset/creator/individualName/surName").text == "Ada"
    assert eml.find("dataset/intellectualRights/para").text == "CC-BY-4.0"
    methods = eml.find("dataset/methods/methodStep/description/para").text
    assert "classification score 0.2" in methods and "Quebec & Vermont species v2" in methods
    events = tables(out)["event.csv"]
    assert {e["license"] for e in events} == {"CC-BY-4.0"}
    assert {e["datasetName"] for e in events} == {"Two traps"}


def test_missing_metadata_is_a_warning_not_a_stop(db, trap_copy, tmp_path):
    cat = ef.build(db, trap_copy, metadata=False)
    result = export(cat, tmp_path / "dwc.zip")
    assert any("no coordinates" in n for n in result.notes)
    assert any("without a UTC offset" in n for n in result.notes)
    events = tables(tmp_path / "dwc.zip")["event.csv"]
    assert {e["decimalLatitude"] for e in events} == {""}
    assert events[0]["eventDate"].count("T") == 2 and "+" not in events[0]["eventDate"]


def test_bad_targets(catalogue, tmp_path):
    with pytest.raises(UserInputError, match="is a folder"):
        export(catalogue, tmp_path)
    with pytest.raises(UserInputError, match="does not exist"):
        export(catalogue, tmp_path / "nope" / "x.zip")
