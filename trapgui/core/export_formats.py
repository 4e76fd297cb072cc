"""The export formats, described once for the CLI (``trapgui export FORMAT``), the services
and the window's format chooser (which must not import the database layer to list them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExportFormat:
    key: str  # the CLI's FORMAT
    title: str  # what the format chooser shows
    description: str  # one or two sentences: what it is and who reads it
    target: str  # "file" or "folder"
    suffix: str  # ".csv", ".zip", ".json"; "" for a folder
    default_name: str  # file or folder name without the date stamp
    counts_individuals: bool  # uses the thresholds to count individuals (else: filters rows)
    options: tuple[str, ...] = ()  # extra options the format takes (see ExportRequest.options)


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("detections", "Detections (CSV)",
                 "One row per detection: image, box, scores and labels per rank, its individual. "
                 "For spreadsheets and your own analyses.",
                 "file", ".csv", "detections", False, ("excel_bom",)),
    ExportFormat("occurrences", "Individuals (CSV)",
                 "One row per individual tracked across a night's images: label, first and last "
                 "seen, detections, best crop, fixture flag.",
                 "file", ".csv", "occurrences", False, ("excel_bom",)),
    ExportFormat("matrix", "Species × night matrix (CSV)",
                 "Individuals per taxon per night, zeros included, one row per trap-night with "
                 "its effort (images, processed, hours). For community analyses.",
                 "file", ".csv", "matrix", True),
    ExportFormat("summary", "Night summary (CSV)",
                 "Per night and taxon: individuals, detections and MaxN, zeros included.",
                 "file", ".csv", "summary", True),
    ExportFormat("camtrap-dp", "Camtrap DP 1.0.2 (folder)",
                 "Camera Trap Data Package: deployments, media and observations (individuals "
                 "and detections), validated against the TDWG standard. Needs each trap's "
                 "coordinates and camera clock.",
                 "folder", "", "camtrap-dp", True,
                 ("title", "contributors", "data_license", "media_license", "media_url",
                  "sampling_design")),
    ExportFormat("dwc", "Darwin Core Archive for GBIF (.zip)",
                 "A sampling-event dataset: one event per trap-night with its effort, "
                 "individual counts per taxon, meta.xml and eml.xml.",
                 "file", ".zip", "darwin-core", True,
                 ("title", "contributors", "license", "absences")),
    ExportFormat("megadetector", "MegaDetector results (JSON)",
                 "MegaDetector batch-output format 1.6, for Timelapse, AddaxAI and the "
                 "MegaDetector tools: boxes, scores and classifications per image.",
                 "file", ".json", "megadetector", False),
    ExportFormat("crops", "Crops of individuals (folder)",
                 "The best crop of every individual as a JPEG cut from the original photo, "
                 "one folder per taxon, with an index to look them up.",
                 "folder", "", "crops", True, ("margin",)),
)
FORMAT_KEYS = tuple(f.key for f in FORMATS)


def format_by_key(key: str) -> ExportFormat:
    for f in FORMATS:
        if f.key == key:
            return f
    raise KeyError(key)
