"""Darwin Core Archive for GBIF: a sampling-event dataset in one .zip.

- ``event.csv`` (core, rowType Event): one sampling event per trap-night that has processed
  images, with its time span (ISO 8601 interval with the camera clock's offset), location,
  protocol and effort (hours from the first to the last image, images taken and processed).
- ``occurrence.csv`` (extension, rowType Occurrence): individuals per taxon per event
  (``individualCount``), ``basisOfRecord`` MachineObservation (HumanObservation once a reviewer
  identified them), ``identifiedBy``; and, by default, ``absent`` records (count 0) for the
  taxa recorded elsewhere in this export on fully processed nights where they were not seen,
  the zeros of the species x night matrix (docs/exports.md explains the choice).
- ``meta.xml`` maps every column to its Darwin Core (or Dublin Core) term URI; ``eml.xml`` is
  minimal dataset metadata (title, creators, licence, coverage, methods with the thresholds and
  models).
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from trapgui.core.errors import UserInputError
from trapgui.core.local_time import iso
from trapgui.core.taxa import taxon_for
from trapgui.db import counts as db_counts
from trapgui.db import review_queries
from trapgui.db.final_labels import HUMAN, LabelResolver
from trapgui.export.about import build_about, sidecar_path, write_about
from trapgui.export.atomic import CsvWriter, atomic_file, check_file_target, number
from trapgui.export.camtrap_dp_package import Contributor
from trapgui.export.common import ExportResult, ExportRun, trap_hours
from trapgui.version import __version__

DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
EVENT_TERMS = [
    ("eventID", DWC), ("datasetName", DWC), ("eventDate", DWC), ("year", DWC), ("month", DWC),
    ("day", DWC), ("samplingProtocol", DWC), ("sampleSizeValue", DWC), ("sampleSizeUnit", DWC),
    ("samplingEffort", DWC), ("locationID", DWC), ("locality", DWC), ("decimalLatitude", DWC),
    ("decimalLongitude", DWC), ("geodeticDatum", DWC), ("coordinateUncertaintyInMeters", DWC),
    ("eventRemarks", DWC), ("license", DC)]
OCCURRENCE_TERMS = [
    ("eventID", DWC), ("occurrenceID", DWC), ("basisOfRecord", DWC), ("occurrenceStatus", DWC),
    ("individualCount", DWC), ("scientificName", DWC), ("taxonRank", DWC), ("kingdom", DWC),
    ("verbatimIdentification", DWC), ("identificationQualifier", DWC), ("identifiedBy", DWC),
    ("identificationRemarks", DWC), ("occurrenceRemarks", DWC)]
ABSENCE_MODES = ("observed", "none")


@dataclass(frozen=True)
class DwcOptions:
    title: str | None = None
    description: str | None = None
    contributors: tuple[Contributor, ...] = ()
    license: str | None = None  # GBIF accepts CC0-1.0, CC-BY-4.0, CC-BY-NC-4.0
    absences: str = "observed"  # "observed": zeros for the export's taxa; "none"

    def __post_init__(self):
        if self.absences not in ABSENCE_MODES:
            raise UserInputError(f"--absences must be one of {', '.join(ABSENCE_MODES)}, not "
                                 f"{self.absences!r}.")


@dataclass(frozen=True)
class _TaxonKey:
    name: str  # scientificName (or the verbatim label when it is not a name)
    rank: str | None
    qualifier: str | None


def export_darwin_core(run: ExportRun, out: str | Path,
                       options: DwcOptions = DwcOptions()) -> ExportResult:
    out = check_file_target(out, (".zip",), "darwin-core")
    run.require_results()
    efforts = [e for e in db_counts.night_effort(run.db, run.scope, run.pipeline_id)
               if e.sampled]
    if not efforts:
        raise UserInputError("Nothing to export: no night of the selection has processed images.")
    counts = db_counts.count_individuals(run.db, run.scope, run.pipeline_id, run.thresholds)
    # who identified the individuals a person labelled, and what the machine had said
    humans = (review_queries.human_identifications(run.db, run.pipeline_id,
                                                 sorted({e.night_id for e in efforts}))
              if any(c.human_identified for c in counts) else {})
    run.warn_untracked()
    with run.db.session() as s:
        resolver = LabelResolver(s)
    pipeline = resolver.pipelines.get(run.pipeline_id, ("?", {}))[0]
    for dep_id in sorted({e.deployment_id for e in efforts}):
        trap = run.traps[dep_id]
        if not trap.has_coordinates:
            run.note(f"Trap {trap.name!r} has no coordinates: its events have no "
                     "decimalLatitude/decimalLongitude (GBIF will not map them).")
        if not trap.clock.known:
            run.note(f"Trap {trap.name!r} has no camera clock time zone: its event dates are "
                     "camera local time without a UTC offset.")
    if not options.contributors:
        run.note("No creator was given (--contributor): eml.xml names none; add one before "
                 "publishing.")
    rows = {"events": 0, "occurrences": 0}
    about = build_about(run.db, "dwc", run.scope, run.pipeline_id, run.thresholds,
                        counts_individuals=True)
    about["absences"] = options.absences
    with atomic_file(out, text=False) as fh, \
            zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        event_ids = {}
        with _entry(zf, "event.csv") as text:
            w = CsvWriter(text)
            w.header([t for t, _ in EVENT_TERMS])
            for effort in efforts:
                event_ids[effort.night_id] = _event_id(run, effort)
                w.row(_event_row(run, effort, event_ids[effort.night_id], options, pipeline))
                rows["events"] += 1
            run.check_cancel()
        with _entry(zf, "occurrence.csv") as text:
            w = CsvWriter(text)
            w.header([t for t, _ in OCCURRENCE_TERMS])
            for row in _occurrence_rows(run, efforts, counts, event_ids, resolver, options,
                                        humans):
                w.row(row)
                rows["occurrences"] += 1
            run.check_cancel()
        zf.writestr("meta.xml", meta_xml())
        about["rows"] = dict(rows)
        about["notes"] = list(run.notes)
        zf.writestr("eml.xml", eml_xml(run, efforts, options, about))
    about_path = write_about(sidecar_path(out), about)
    return ExportResult("dwc", out, rows, about_path, tuple(run.notes))


class _entry:
    """A text stream into a new zip member (streamed: never the whole table in memory)."""

    def __init__(self, zf: zipfile.ZipFile, name: str):
        self._raw = zf.open(name, "w", force_zip64=True)
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8", newline="")

    def __enter__(self):
        return self._text

    def __exit__(self, *exc):
        self._text.close()


def _event_id(run: ExportRun, effort) -> str:
    return f"urn:uuid:{run.traps[effort.deployment_id].uid}:{effort.date.isoformat()}"


def _event_row(run: ExportRun, e, event_id: str, options: DwcOptions, pipeline: str) -> list:
    trap = run.traps[e.deployment_id]
    v = trap.values
    start = run.exact_time(e.deployment_id, e.start, None) or e.start
    end = run.exact_time(e.deployment_id, e.end, None) or e.end
    hours = trap_hours(run, e.deployment_id, e.start, e.end)
    remarks = [f"night of {e.date.isoformat()} (named after its evening)"]
    if e.waiting:
        remarks.append(f"only {e.processed} of {e.images} images processed ({e.waiting} "
                       "waiting): counts cover those")
    if e.failed or e.unreadable:
        remarks.append(f"{e.failed + e.unreadable} images could not be read or processed")
    if e.missing_processed:
        remarks.append(f"{e.missing_processed} processed images deleted from the trap folder "
                       "since (their results are counted)")
    if v.notes:
        remarks.append(v.notes)
    coords = trap.has_coordinates
    return [event_id, options.title, f"{_when(start)}/{_when(end)}", e.date.year, e.date.month,
            e.date.day, _protocol(run, trap, pipeline), number(hours, 2) if hours > 0 else None,
            "hour" if hours > 0 else None,
            f"{e.images} images taken over {hours:.2f} h, {e.processed} processed",
            f"urn:uuid:{trap.uid}", v.site_name or trap.name,
            number(v.latitude, 7) if coords else None, number(v.longitude, 7) if coords else None,
            "WGS84" if coords else None,
            number(v.coordinate_uncertainty_m, 1) if coords and v.coordinate_uncertainty_m
            else None, "; ".join(remarks), options.license]


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return iso(value) if value.tzinfo else value.isoformat(timespec="seconds")


def _protocol(run: ExportRun, trap, pipeline: str) -> str:
    parts = ["Automated light trap: time-lapse photographs of an illuminated sheet; insects "
             f"detected, tracked into individuals and identified by machine with trapgui "
             f"{__version__} ({pipeline}) at detection score {run.thresholds.detection} and "
             f"classification score {run.thresholds.label}"]
    if trap.values.light_description:
        parts.append(f"light: {trap.values.light_description}")
    if trap.values.trap_description:
        parts.append(f"trap: {trap.values.trap_description}")
    return "; ".join(parts)


def _occurrence_rows(run: ExportRun, efforts, counts, event_ids, resolver: LabelResolver,
                     options: DwcOptions, humans: dict):
    by_event: dict[int, dict[_TaxonKey, list]] = defaultdict(lambda: defaultdict(list))
    for c in counts:
        if c.night_id not in event_ids:
            continue
        taxon = taxon_for(c.label, c.rank)
        key = _TaxonKey(taxon.scientific_name or taxon.verbatim or "", taxon.taxon_rank,
                        taxon.qualifier)
        by_event[c.night_id][key].append(c)
    # absences only for taxa of the export, identified (the unidentified bucket is no taxon)
    observed = sorted({k for groups in by_event.values() for k, cs in groups.items()
                       if any(c.label is not None for c in cs)}, key=lambda k: k.name)
    for e in efforts:
        event_id = event_ids[e.night_id]
        groups = by_event.get(e.night_id, {})
        for key in sorted(groups, key=lambda k: (k.name == "", k.name)):
            yield from _present(event_id, key, groups[key], run, resolver, humans)
        if options.absences == "observed" and e.fully_processed:
            for key in observed:
                if key not in groups:
                    yield [event_id, f"{event_id}:{key.name}:absent", "MachineObservation",
                           "absent", 0, key.name, key.rank, "Animalia", None, key.qualifier,
                           None, "not recorded on this fully processed night at the stated "
                           "thresholds (a machine's zero: a missed insect is possible)", None]


def _present(event_id: str, key: _TaxonKey, group: list, run: ExportRun,
             resolver: LabelResolver, humans: dict):
    individuals = sum(c.individuals for c in group)
    human = sum(c.human_identified for c in group)
    detections = sum(c.detections for c in group)
    max_n = max(c.max_n for c in group)
    labels = sorted({c.label for c in group if c.label})
    verbatim = " | ".join(labels) or None
    identified = any(c.label is not None for c in group)
    models = sorted({resolver.describe_model(resolver.model_key(run.pipeline_id, c.rank), None,
                                             run.pipeline_id) for c in group if c.label})
    remarks = f"{detections} detections; at most {max_n} at once (MaxN)"
    if identified:
        id_remarks = (f"machine label scoring at least {run.thresholds.label}"
                      if individuals - human else None)
    else:
        id_remarks = (f"detected, not identified: no label reached the classification score "
                      f"{run.thresholds.label}")
    for method, n in (("machine", individuals - human), (HUMAN, human)):
        if n <= 0:
            continue
        if method == HUMAN:
            by, id_text = _reviewers(humans, group)
        else:
            by = " | ".join(models) if identified else None
            id_text = id_remarks
        yield [event_id, f"{event_id}:{key.name or 'unidentified'}:{method}",
               "HumanObservation" if method == HUMAN else "MachineObservation", "present", n,
               key.name or None, key.rank, "Animalia", verbatim, key.qualifier, by, id_text,
               remarks]


def _reviewers(humans: dict, group: list) -> tuple[str | None, str]:
    """identifiedBy (the reviewers) and identificationRemarks (what the machine had said)
    of a taxon's human-identified individuals of one night."""
    names: set[str] = set()
    machine: dict[str, int] = {}
    for c in group:
        entry = humans.get((c.night_id, c.label))
        if entry is None:
            continue
        names |= entry["by"]
        for label, n in entry["machine"].items():
            machine[label] = machine.get(label, 0) + n
    said = "; ".join(f"{label} ({n})" for label, n in sorted(machine.items()))
    return (" | ".join(sorted(names)) or None,
            "identified by a reviewer" + (f"; machine label when reviewed: {said}" if said else ""))


def meta_xml() -> str:
    """The archive descriptor (DwC text guidelines): core Event, extension Occurrence."""
    ns = "http://rs.tdwg.org/dwc/text/"
    ET.register_namespace("", ns)
    root = ET.Element(f"{{{ns}}}archive", {"metadata": "eml.xml"})
    for tag, row_type, location, terms, id_tag in (
            ("core", DWC + "Event", "event.csv", EVENT_TERMS, "id"),
            ("extension", DWC + "Occurrence", "occurrence.csv", OCCURRENCE_TERMS, "coreid")):
        el = ET.SubElement(root, f"{{{ns}}}{tag}", {
            "encoding": "UTF-8", "fieldsTerminatedBy": ",", "linesTerminatedBy": "\\r\\n",
            "fieldsEnclosedBy": '"', "ignoreHeaderLines": "1", "rowType": row_type})
        files = ET.SubElement(el, f"{{{ns}}}files")
        ET.SubElement(files, f"{{{ns}}}location").text = location
        ET.SubElement(el, f"{{{ns}}}{id_tag}", {"index": "0"})
        for index, (term, namespace) in enumerate(terms):
            ET.SubElement(el, f"{{{ns}}}field", {"index": str(index), "term": namespace + term})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def eml_xml(run: ExportRun, efforts, options: DwcOptions, about: dict) -> str:
    """Minimal EML 2.1.1 (GBIF metadata profile): title, creators, abstract, licence,
    coverage and methods."""
    ns = "eml://ecoinformatics.org/eml-2.1.1"
    ET.register_namespace("eml", ns)
    traps = [run.traps[d] for d in sorted({e.deployment_id for e in efforts})]
    title = options.title or ("Light-trap insect counts from "
                              + ", ".join(t.name for t in traps))
    root = ET.Element(f"{{{ns}}}eml", {"packageId": str(uuid.uuid4()), "system": "trapgui",
                                       "{http://www.w3.org/XML/1998/namespace}lang": "en"})
    ds = ET.SubElement(root, "dataset")
    ET.SubElement(ds, "title").text = title
    people = options.contributors or (Contributor("Not stated"),)
    for tag in ("creator", "metadataProvider"):
        for c in people:
            el = ET.SubElement(ds, tag)
            ET.SubElement(ET.SubElement(el, "individualName"), "surName").text = c.title
            if c.email:
                ET.SubElement(el, "electronicMailAddress").text = c.email
    ET.SubElement(ds, "pubDate").text = dt.date.today().isoformat()
    ET.SubElement(ds, "language").text = "en"
    ET.SubElement(ET.SubElement(ds, "abstract"), "para").text = options.description or (
        f"Insects counted at {len(traps)} automated light trap(s) over {len(efforts)} nights. "
        + about["counting"])
    if options.license:
        ET.SubElement(ET.SubElement(ds, "intellectualRights"), "para").text = options.license
    coverage = ET.SubElement(ds, "coverage")
    located = [t for t in traps if t.has_coordinates]
    if located:
        geo = ET.SubElement(coverage, "geographicCoverage")
        ET.SubElement(geo, "geographicDescription").text = "; ".join(
            t.values.site_name or t.name for t in located)
        box = ET.SubElement(geo, "boundingCoordinates")
        lats = [t.values.latitude for t in located]
        lons = [t.values.longitude for t in located]
        for tag, value in (("westBoundingCoordinate", min(lons)),
                           ("eastBoundingCoordinate", max(lons)),
                           ("northBoundingCoordinate", max(lats)),
                           ("southBoundingCoordinate", min(lats))):
            ET.SubElement(box, tag).text = str(value)
    span = ET.SubElement(ET.SubElement(coverage, "temporalCoverage"), "rangeOfDates")
    ET.SubElement(ET.SubElement(span, "beginDate"), "calendarDate").text = \
        min(e.date for e in efforts).isoformat()
    ET.SubElement(ET.SubElement(span, "endDate"), "calendarDate").text = \
        max(e.date for e in efforts).isoformat()
    contact = ET.SubElement(ds, "contact")
    ET.SubElement(ET.SubElement(contact, "individualName"), "surName").text = people[0].title
    methods = ET.SubElement(ds, "methods")
    step = ET.SubElement(ET.SubElement(methods, "methodStep"), "description")
    pipeline = about.get("pipeline") or {}
    models = sorted({f"{m.get('name')} {m.get('version') or ''}".strip()
                     for r in about["processing_runs"] for m in (r.get("models") or {}).values()
                     if isinstance(m, dict)})
    ET.SubElement(step, "para").text = (
        f"Images processed with trapgui (model configuration {pipeline.get('name')!r}: "
        f"{', '.join(models) or 'models not recorded'}). Thresholds: detection score "
        f"{run.thresholds.detection}, classification score {run.thresholds.label}. "
        + about["counting"])
    sampling = ET.SubElement(methods, "sampling")
    ET.SubElement(ET.SubElement(sampling, "studyExtent"), "description").append(
        _para(f"{len(efforts)} trap-nights at {len(traps)} trap(s)."))
    ET.SubElement(sampling, "samplingDescription").append(_para(
        "Each sampling event is one trap-night: a light attracts insects to a white sheet "
        "photographed at regular intervals from evening to morning; effort is the time from "
        "the first to the last photograph."))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _para(text: str) -> ET.Element:
    el = ET.Element("para")
    el.text = text
    return el
