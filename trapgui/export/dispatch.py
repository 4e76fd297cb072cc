"""One entry point for every export format: ``run_export(db, request, emit, control)``, the
job contract's shape, used by the CLI and by the services (the window)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trapgui.core.errors import UserInputError
from trapgui.core.export_formats import FORMAT_KEYS, format_by_key
from trapgui.core.jobs import Emit, JobControl, Progress, ignore
from trapgui.db.database import Database
from trapgui.db.export_queries import ExportScope, Thresholds, pipelines_in_scope, provenance
from trapgui.export.about import build_about, sidecar_path, write_about
from trapgui.export.common import ExportResult, ExportRun


@dataclass(frozen=True)
class ExportRequest:
    format: str  # one of core.export_formats.FORMAT_KEYS
    out: Path
    scope: ExportScope = ExportScope()
    thresholds: Thresholds = Thresholds()  # what counting formats count at
    # row filters of the row formats (detections, occurrences, megadetector); None = every row
    min_detection_score: float | None = None
    min_label_score: float | None = None
    options: dict = field(default_factory=dict)  # per format, see core.export_formats

    def __post_init__(self):
        if self.format not in FORMAT_KEYS:
            raise UserInputError(f"{self.format!r} is not an export format: use one of "
                                 f"{', '.join(FORMAT_KEYS)}.")


def run_export(db: Database, request: ExportRequest, emit: Emit | None = None,
               control: JobControl | None = None) -> ExportResult:
    """Write ``request``; raises UserInputError (a sentence) for bad input and Cancelled when
    ``control`` cancels (nothing is left behind under the chosen name)."""
    emit = emit or ignore
    if request.format == "detections":
        return _detections(db, request, emit, control)
    run = ExportRun.start(db, request.scope, request.thresholds, emit, control)
    o = request.options
    out = Path(request.out).expanduser()
    if request.format == "camtrap-dp":
        from trapgui.export.camtrap_dp import export_camtrap_dp
        from trapgui.export.camtrap_dp_package import CamtrapOptions, Contributor

        options = CamtrapOptions(
            title=o.get("title"), contributors=_contributors(o, Contributor),
            data_license=o.get("data_license"), media_license=o.get("media_license"),
            media_url=o.get("media_url"),
            sampling_design=o.get("sampling_design") or "targeted")
        return export_camtrap_dp(run, out, options)
    if request.format == "dwc":
        from trapgui.export.camtrap_dp_package import Contributor
        from trapgui.export.darwin_core import DwcOptions, export_darwin_core

        options = DwcOptions(title=o.get("title"), contributors=_contributors(o, Contributor),
                             license=o.get("license"), absences=o.get("absences") or "observed")
        return export_darwin_core(run, out, options)
    if request.format == "megadetector":
        from trapgui.export.megadetector import export_megadetector

        return export_megadetector(run, out, request.min_detection_score)
    if request.format == "matrix":
        from trapgui.export.matrix import export_matrix

        return export_matrix(run, out)
    if request.format == "summary":
        from trapgui.export.matrix import export_summary

        return export_summary(run, out)
    if request.format == "crops":
        from trapgui.export.crops import export_crops

        margin = o.get("margin")
        return export_crops(run, out, 0.1 if margin is None else float(margin))
    if request.format == "occurrences":
        from trapgui.export.occurrences_csv import export_occurrences

        return export_occurrences(run, out, min_detection_score=request.min_detection_score,
                                  min_label_score=request.min_label_score,
                                  excel_bom=bool(o.get("excel_bom")))
    raise UserInputError(f"The {format_by_key(request.format).title} export is not available.")


def _contributors(options: dict, cls) -> tuple:
    items = options.get("contributors") or ()
    return tuple(c if isinstance(c, cls) else cls.parse(str(c)) for c in items)


def _detections(db: Database, request: ExportRequest, emit: Emit,
                control: JobControl | None) -> ExportResult:
    from trapgui.export.csv_export import ExportFilter, export_detections

    s = request.scope
    flt = ExportFilter(nights=s.nights, night_ids=s.night_ids, deployment_ids=s.deployment_ids,
                       pipeline_id=s.pipeline_id,
                       min_detection_score=request.min_detection_score,
                       min_classification_score=request.min_label_score)

    def progress(done: int, total: int) -> None:
        emit(Progress(done=done, total=total, unit="rows", message="Writing detections"))
        if control is not None and control.paused:
            control.wait_while_paused()

    cancelled = (lambda: control.cancelled) if control is not None else None
    report = export_detections(db, request.out, flt,
                               excel_bom=bool(request.options.get("excel_bom")),
                               progress=progress, cancel=cancelled)
    # a detections file may mix model configurations (the `pipeline` column): state them all
    pids = [s.pipeline_id] if s.pipeline_id else [p.id for p in pipelines_in_scope(db, s)]
    about = build_about(db, "detections", s, pids[0] if len(pids) == 1 else None, None,
                        counts_individuals=False)
    if len(pids) > 1:
        about["pipelines"] = [provenance(db, s, pid) for pid in pids]
    about["filters"] = {"min_detection_score": request.min_detection_score,
                        "min_label_score": request.min_label_score}
    about["rows"] = {"detections": report.rows}
    about_path = write_about(sidecar_path(report.path), about)
    return ExportResult("detections", report.path, {"detections": report.rows}, about_path)
