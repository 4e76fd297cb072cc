"""Camera Trap Data Package (Camtrap DP) 1.0.2: ``datapackage.json`` + ``deployments.csv``,
``media.csv``, ``observations.csv`` in a folder. Mapping (docs/exports.md):

- deployments: one per trap (``deploymentID`` = the trap's stable uid), coordinates and the
  deployment's start/end from the trap's metadata (default: first / last image);
  ``timestampIssues`` true when some photo times came from the files' modification times.
- media: every dated image of the selection, processed or not, empty or not (``captureMethod``
  = ``timeLapse``), timestamps ISO 8601 with the offset of the trap's camera clock.
- observations, event level: one per individual (occurrence), ``individualID`` and
  ``eventID`` = the occurrence, from its first to its last image, ``count`` 1.
- observations, media level: one per detection (its box normalised to the image), linked to
  its individual by ``eventID``; and one ``blank`` per processed image without any insect.
- ``observationType``: ``animal`` when the label counts at the classification threshold,
  ``unknown`` when a classifier's label is below it, ``unclassified`` when no classifier ran.

The standard requires coordinates and exact timestamps: a trap without coordinates or without
a camera clock (when its photos state no offset) stops the export with a sentence saying how
to set them. Everything streams; memory does not grow with the catalogue.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from trapgui.core.errors import UserInputError
from trapgui.core.local_time import iso, iso_utc
from trapgui.core.taxa import taxon_for
from trapgui.db import export_queries as q
from trapgui.db.final_labels import LabelResolver
from trapgui.export.about import build_about
from trapgui.export.atomic import CsvWriter, Plain, atomic_folder, check_folder_target, number
from trapgui.export.csv_export import escape_cell
from trapgui.export.camtrap_dp_package import CamtrapOptions, package_descriptor
from trapgui.export.common import ExportResult, ExportRun

_TAXON_RANKS = {"kingdom", "phylum", "class", "order", "family", "genus", "species",
                "subspecies"}

DEPLOYMENT_COLUMNS = [
    "deploymentID", "locationID", "locationName", "latitude", "longitude",
    "coordinateUncertainty", "deploymentStart", "deploymentEnd", "setupBy", "cameraID",
    "cameraModel", "cameraDelay", "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading",
    "detectionDistance", "timestampIssues", "baitUse", "featureType", "habitat",
    "deploymentGroups", "deploymentTags", "deploymentComments"]
MEDIA_COLUMNS = [
    "mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic",
    "fileName", "fileMediatype", "exifData", "favorite", "mediaComments"]
OBSERVATION_COLUMNS = [
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
    "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
    "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
    "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
    "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments"]
_MEDIATYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".tif": "image/tiff", ".tiff": "image/tiff"}


def check_metadata(run: ExportRun) -> None:
    """The traps' coordinates and clocks the standard needs, or one error listing them all."""
    per_trap = q.dated_images_per_trap(run.db, run.scope)
    if not per_trap:
        raise UserInputError("Nothing to export: the selection has no dated images (Camtrap DP "
                             "needs a time for every photo).")
    problems = []
    for dep_id in sorted(per_trap, key=lambda d: run.traps[d].name):
        trap = run.traps[dep_id]
        _dated, no_offset, _mtime = per_trap[dep_id]
        missing = []
        if not trap.has_coordinates:
            missing.append("its coordinates (--latitude, --longitude)")
        if no_offset and not trap.clock.known:
            missing.append(f"its camera clock's time zone (--timezone), because {no_offset:,} of "
                           "its photos state no UTC offset")
        if missing:
            problems.append(f"trap {trap.name!r} (id {trap.id}) needs " + " and ".join(missing))
    if problems:
        raise UserInputError(
            "Camtrap DP needs coordinates and exact times for every trap: " + "; ".join(problems)
            + ".", hint="Set them with `trapgui trap set TRAP --latitude ... --longitude ... "
            "--timezone ...`, or in the app: right-click the trap ▸ Properties.")


def export_camtrap_dp(run: ExportRun, out: str | Path,
                      options: CamtrapOptions = CamtrapOptions()) -> ExportResult:
    out = check_folder_target(out)
    run.require_results()
    check_metadata(run)
    writer = _Writer(run, options)
    with atomic_folder(out) as tmp:
        writer.write(tmp)
    return ExportResult("camtrap-dp", out, writer.rows, None, tuple(run.notes))


@dataclass
class _Coverage:
    taxa: dict[str, str | None] = field(default_factory=dict)  # scientificName -> rank
    first: dt.date | None = None
    last: dt.date | None = None
    used_traps: set[int] = field(default_factory=set)
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)

    def saw(self, dep_id: int, when: dt.datetime) -> None:
        self.used_traps.add(dep_id)
        first, last = self.spans.get(dep_id, (when, when))
        self.spans[dep_id] = (min(first, when), max(last, when))
        day = when.date()
        self.first = day if self.first is None or day < self.first else self.first
        self.last = day if self.last is None or day > self.last else self.last


class _Writer:
    def __init__(self, run: ExportRun, options: CamtrapOptions):
        self.run = run
        self.options = options
        self.rows = {"deployments": 0, "media": 0, "observations": 0}
        self.coverage = _Coverage()
        self.timestamp_issues: set[int] = set()
        self.done = 0
        self.total = 0
        self.events = 0  # event-level observations written
        self._animal: dict[tuple, tuple] = {}  # (label, rank) -> observation type, name, comment
        self._prefixes: dict[int, str] = {}  # trap id -> filePath prefix
        self.detector = _detector_name(q.provenance(run.db, run.scope, run.pipeline_id))

    # -- driver --------------------------------------------------------------------------------
    def write(self, folder: Path) -> None:
        run = self.run
        t = run.thresholds
        self.total = (q.count_images(run.db, run.scope, dated_only=True)
                      + q.count_rows(run.db, q.occurrence_select(run.scope, run.pipeline_id,
                                                                 t.detection))
                      + q.count_rows(run.db, q.detection_select(run.scope, run.pipeline_id,
                                                                t.detection, dated_only=True)))
        with open(folder / "media.csv", "w", encoding="utf-8", newline="") as media_fh, \
                open(folder / "observations.csv", "w", encoding="utf-8", newline="") as obs_fh, \
                run.db.session() as s:
            media, obs = CsvWriter(media_fh), CsvWriter(obs_fh)
            media.header(MEDIA_COLUMNS)
            obs.header(OBSERVATION_COLUMNS)
            resolver = LabelResolver(s)
            self._media(s, media, obs)
            self._events(s, obs, resolver)
            self._media_observations(s, obs, resolver)
        with open(folder / "deployments.csv", "w", encoding="utf-8", newline="") as fh:
            self._deployments(CsvWriter(fh))
        run.warn_untracked()  # their detections are media-level observations only
        about = build_about(run.db, "camtrap-dp", run.scope, run.pipeline_id, run.thresholds,
                            counts_individuals=True)
        about.update(rows=dict(self.rows), notes=list(run.notes))
        traps = [run.traps[d] for d in sorted(self.coverage.used_traps)]
        package = package_descriptor(self.options, traps, self.coverage, bool(self.events),
                                     about)
        with open(folder / "datapackage.json", "w", encoding="utf-8") as fh:
            json.dump(package, fh, indent=2, ensure_ascii=False)
            fh.write("\n")

    def _tick(self, n: int, message: str) -> None:
        self.done += n
        self.run.progress(self.done, max(self.total, self.done), "rows", message)
        self.run.check_cancel()

    # -- media (and blanks) --------------------------------------------------------------------
    def _media(self, session, media: CsvWriter, obs: CsvWriter) -> None:
        run = self.run
        result = q.image_rows(session, run.scope, run.pipeline_id, dated_only=True,
                              counted_at=run.thresholds.detection)
        undated = 0
        for part in result.partitions():
            for r in part:
                when = run.exact_time(r.deployment_id, r.captured_at, r.utc_offset_min)
                if when is None:
                    undated += 1
                    continue
                trap = run.traps[r.deployment_id]
                self.coverage.saw(r.deployment_id, when)
                comments = []
                if r.time_source == "file_mtime":
                    self.timestamp_issues.add(r.deployment_id)
                    comments.append("time from the file's modification time (unreliable)")
                if r.state == "unreadable":
                    comments.append(f"unreadable: {r.error or 'unknown reason'}")
                elif r.state == "missing":
                    comments.append("file missing since the last scan")
                if r.job_state == "failed":
                    comments.append(f"processing failed: {r.job_error or 'unknown reason'}")
                elif r.job_state != "done" and r.state == "ok":
                    comments.append("not processed")
                media.row([f"m{r.id}", trap.uid, "timeLapse", iso(when),
                           self._file_path(trap, r.rel_path),
                           bool(self.options.media_url), r.rel_path.rsplit("/", 1)[-1],
                           _mediatype(r.rel_path), None, None, "; ".join(comments)])
                self.rows["media"] += 1
                if r.job_state == "done" and not r.counted:
                    obs.row([f"m{r.id}-blank", trap.uid, f"m{r.id}", None, iso(when), iso(when),
                             "media", "blank", *[None] * 14, "machine",
                             self.detector, None, None, None,
                             f"no insect at detection score {run.thresholds.detection}"])
                    self.rows["observations"] += 1
            self._tick(len(part), "Writing media")
        if undated:
            run.note(f"{undated:,} images without an exact time were left out of media.csv.")

    def _file_path(self, trap, rel_path: str) -> str:
        prefix = self._prefixes.get(trap.id)
        if prefix is None:
            if self.options.media_url:
                prefix = (self.options.media_url.rstrip("/") + "/"
                          + quote(Path(trap.path).name) + "/")
            else:
                prefix = Path(trap.path).as_uri().rstrip("/") + "/"
            self._prefixes[trap.id] = prefix
        return prefix + quote(rel_path)

    # -- event-level observations (individuals) -----------------------------------------------
    def _events(self, session, obs: CsvWriter, resolver: LabelResolver) -> None:
        run = self.run
        t = run.thresholds
        result = q.occurrence_rows(session, run.scope, run.pipeline_id, t.detection)
        for part in result.partitions():
            for r in part:
                start = run.exact_time(r.deployment_id, r.first_seen or r.best_captured_at,
                                       r.best_offset)
                end = run.exact_time(r.deployment_id, r.last_seen or r.first_seen
                                     or r.best_captured_at, r.best_offset)
                if start is None:
                    continue
                end = max(end or start, start)
                label = resolver.resolve(r)
                kind, name, comment = self._type(label, t.label)
                tags = _tags(("label", label.label), ("rank", label.rank),
                             ("detections", r.detections), *_machine_tags(label))
                obs.row([f"occ{r.id}", run.traps[r.deployment_id].uid, None, f"occ{r.id}",
                         iso(start), iso(end), "event", kind, None, name, 1, None, None, None,
                         f"occ{r.id}", None, None, None, None, None, None, None,
                         label.method if label.label else None, label.identified_by,
                         iso_utc(label.identified_at), _probability(label), tags, comment])
                self.rows["observations"] += 1
                self.events += 1
            self._tick(len(part), "Writing individuals")

    def _type(self, label, min_label: float) -> tuple[str, str | None, str | None]:
        if label.label is None:
            return "unclassified", None, None
        if not label.accepted(min_label):
            return "unknown", None, (f"machine label {label.label!r} scored "
                                     f"{number(label.score, 3)}, below the classification "
                                     f"threshold {min_label}")
        key = (label.label, label.rank)
        found = self._animal.get(key)
        if found is None:
            taxon = taxon_for(label.label, label.rank)
            if taxon.scientific_name:
                rank = taxon.taxon_rank if taxon.taxon_rank in _TAXON_RANKS else None
                self.coverage.taxa.setdefault(taxon.scientific_name, rank)
            comment = f"identification qualifier: {taxon.qualifier}" if taxon.qualifier else None
            found = self._animal[key] = ("animal", taxon.scientific_name, comment)
        return found

    # -- media-level observations (detections) --------------------------------------------------
    def _media_observations(self, session, obs: CsvWriter, resolver: LabelResolver) -> None:
        """One row per detection: the export's hot loop (100,000s of rows), so cells are
        formatted here and only the text that can come from a user or a model is escaped."""
        run = self.run
        t = run.thresholds
        result = q.detection_rows(session, run.scope, run.pipeline_id, t.detection,
                                  dated_only=True)
        uids = {d: trap.uid for d, trap in run.traps.items()}
        last_image, when_text = None, None  # detections come grouped by image: one time each
        for part in result.partitions():
            for r in part:
                if r.image_id != last_image:
                    last_image = r.image_id
                    when = run.exact_time(r.deployment_id, r.captured_at, r.utc_offset_min)
                    when_text = iso(when) if when is not None else None
                if when_text is None or not r.width or not r.height:
                    continue
                label = resolver.resolve(r)
                kind, name, comment = self._type(label, t.label)
                occ = f"occ{r.occurrence_id}" if r.occurrence_id else ""
                tags = _tags(("label", label.label), ("rank", label.rank),
                             ("detectionScore", "%.4g" % r.score), *_machine_tags(label))
                has_label = label.label is not None
                obs.raw_row((
                    f"d{r.id}", uids[r.deployment_id], f"m{r.image_id}", occ, when_text,
                    when_text, "media", kind, "", escape_cell(name or ""), "1", "", "", "",
                    occ, "", "", "", *_bbox(r.x1, r.y1, r.x2, r.y2, r.width, r.height),
                    label.method if has_label else "", escape_cell(label.identified_by or ""),
                    iso_utc(label.identified_at), _probability(label),
                    escape_cell(tags or ""), escape_cell(comment or "")))
                self.rows["observations"] += 1
            self._tick(len(part), "Writing detections")

    # -- deployments ---------------------------------------------------------------------------
    def _deployments(self, w: CsvWriter) -> None:
        run = self.run
        w.header(DEPLOYMENT_COLUMNS)
        for dep_id in sorted(self.coverage.used_traps, key=lambda d: run.traps[d].name):
            trap = run.traps[dep_id]
            v = trap.values
            start = run.exact_time(dep_id, trap.start, None)
            end = run.exact_time(dep_id, trap.end, None)
            if start is None or end is None:  # no trap clock: the photos' own offsets
                start, end = self.coverage.spans[dep_id]
            comments = "; ".join(x for x in (
                f"Trap: {v.trap_description}" if v.trap_description else None,
                f"Light: {v.light_description}" if v.light_description else None,
                f"Notes: {v.notes}" if v.notes else None,
                f"Camera clock: {trap.clock.describe()}")
                if x)
            uncertainty = (math.ceil(v.coordinate_uncertainty_m)
                           if v.coordinate_uncertainty_m else None)
            w.row([trap.uid, None, v.site_name or trap.name, number(v.latitude, 7),
                   number(v.longitude, 7), uncertainty, iso(start), iso(end), None, None, None,
                   None, None, None, None, None, None, dep_id in self.timestamp_issues, False,
                   None, None, None, _tags(("trap", trap.name), ("attractant", "light")),
                   comments])
            self.rows["deployments"] += 1

def _detector_name(prov: dict) -> str:
    """The detector's name and version as the processing runs recorded it."""
    key = ((prov["pipeline"] or {}).get("config") or {}).get("detector")
    for r in reversed(prov["processing_runs"]):
        info = (r.get("models") or {}).get(key)
        if isinstance(info, dict):
            return " ".join(str(x) for x in (info.get("name") or key, info.get("version")) if x)
    return key or "detector"


def _mediatype(rel_path: str) -> str:
    suffix = os.path.splitext(rel_path)[1].lower()
    return _MEDIATYPES.get(suffix, "image/" + (suffix.lstrip(".") or "jpeg"))


def _bbox(x1, y1, x2, y2, width, height) -> list[str]:
    """Top-left corner, width and height relative to the image, inside [0, 1] (width and
    height at least 1e-6: the standard wants them above zero)."""
    left = min(max(x1 / width, 0.0), 1.0)
    top = min(max(y1 / height, 0.0), 1.0)
    w = min(max((x2 - x1) / width, 1e-6), max(1.0 - left, 1e-6))
    h = min(max((y2 - y1) / height, 1e-6), max(1.0 - top, 1e-6))
    return [_fraction(left), _fraction(top), _fraction(w), _fraction(h)]


def _fraction(value: float) -> Plain:
    """A value in [0, 1] with 6 decimals, trailing zeros dropped (the hot path: no repr)."""
    text = ("%.6f" % value).rstrip("0").rstrip(".")
    return Plain(text or "0")


def _probability(label) -> str:
    if label.score is None or label.label is None:
        return ""
    return _fraction(min(max(label.score, 0.0), 1.0))


def _machine_tags(label) -> tuple:
    """A reviewer's label keeps the machine's beside it (Camtrap DP has no column for it)."""
    if label.method != "human" or label.machine_label is None:
        return ()
    score = None if label.machine_score is None else "%.4g" % label.machine_score
    return (("machineLabel", label.machine_label), ("machineScore", score))


def _tags(*pairs) -> str | None:
    """Camtrap DP tags: ``key:value`` pairs separated by ``|`` (a ``|`` in a value is dropped)."""
    out = [f"{k}:{str(v).replace('|', '/')}" for k, v in pairs if v not in (None, "")]
    return " | ".join(out) or None
