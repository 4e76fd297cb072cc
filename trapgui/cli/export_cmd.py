"""`trapgui export FORMAT --out PATH [filters] [options]`: results in every publishing format.

FORMAT is one of detections, occurrences, matrix, summary, camtrap-dp, dwc, megadetector,
crops (docs/exports.md). Default: all traps and all nights. Formats that count individuals use
the thresholds of the settings unless --min-score / --min-class-score say otherwise; row
formats (detections, occurrences, megadetector) write every row unless a minimum is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from trapgui.core.export_formats import FORMATS

_EPILOG = "Formats and their columns: docs/exports.md and docs/csv-columns.md."


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export results (CSV, Camtrap DP, Darwin Core, MegaDetector, crops)",
        description="Export results from the catalogue. Every export states the thresholds, "
        "models and app version it used (in the package, or in a FILE-about.json beside it).",
        epilog=_EPILOG)
    kinds = p.add_subparsers(dest="export_kind", metavar="FORMAT", required=True)
    for fmt in FORMATS:
        d = kinds.add_parser(fmt.key, help=fmt.title, description=_description(fmt),
                             epilog=_EPILOG)
        _common(d, fmt)
        for option in fmt.options:
            _OPTIONS[option](d)
        d.set_defaults(func=run, export_format=fmt)


def _description(fmt) -> str:
    extra = {
        "detections": " Columns are described in docs/csv-columns.md.",
        "camtrap-dp": " Each trap needs coordinates and a camera clock: `trapgui trap set`.",
    }.get(fmt.key, "")
    return fmt.description + extra


def _common(d, fmt) -> None:
    target = "FOLDER" if fmt.target == "folder" else f"FILE{fmt.suffix}"
    d.add_argument("--out", required=True, metavar=target,
                   help=f"the {'folder' if fmt.target == 'folder' else 'file'} to write "
                   "(written under a temporary name and renamed when complete)")
    d.add_argument("--night", action="append", type=_date, metavar="YYYY-MM-DD",
                   help="only this night (the evening's date; repeat for several)")
    d.add_argument("--trap", action="append", metavar="TRAP",
                   help="only this trap: its id, name or folder (repeat for several)")
    d.add_argument("--pipeline", metavar="NAME",
                   help="the model configuration whose results to export (needed when the "
                   "images were processed with several), e.g. 'builtin + "
                   "moth_binary_resnet50_2024'")
    if fmt.counts_individuals:
        d.add_argument("--min-score", type=_score, metavar="X",
                       help="detection threshold: an individual counts when one of its "
                       "detections scores at least X (default: the settings' detection "
                       "threshold)")
        d.add_argument("--min-class-score", type=_score, metavar="X",
                       help="classification threshold: a machine label counts from X, below "
                       "it the individual is 'not identified' (default: the settings' "
                       "classification threshold)")
    else:
        what = {"detections": "detections", "occurrences": "individuals",
                "megadetector": "detections"}[fmt.key]
        d.add_argument("--min-score", type=_score, metavar="X",
                       help=f"only {what} with a detector score of at least X (0-1; default: "
                       "all)")
        d.add_argument("--min-class-score", type=_score, metavar="X",
                       help=f"only {what} whose final label has a score of at least X (0-1)"
                       if fmt.key != "megadetector" else
                       "the classification threshold stated in the file for Timelapse "
                       "(default: the settings')")


def _excel(d):
    d.add_argument("--excel", action="store_true",
                   help="start the file with a byte-order mark so Excel reads accents correctly")


def _title(d):
    d.add_argument("--title", metavar="TEXT", help="the dataset's title")


def _contributors(d):
    d.add_argument("--contributor", action="append", metavar='"NAME <EMAIL>"',
                   help="a person or organisation responsible for the data (repeat for "
                   "several; the first is the contact). Camtrap DP: add a role after the email "
                   "(contact, principalInvestigator, rightsHolder, publisher, contributor)")


def _data_license(d):
    d.add_argument("--data-license", metavar="ID",
                   help="licence of the data, e.g. CC0-1.0 or CC-BY-4.0 (with --media-license)")


def _media_license(d):
    d.add_argument("--media-license", metavar="ID",
                   help="licence of the photos, e.g. CC-BY-4.0 (with --data-license)")


def _media_url(d):
    d.add_argument("--media-url", metavar="URL",
                   help="where the photos are published: filePath becomes URL/TRAP-FOLDER/IMAGE "
                   "and filePublic true (default: file:// paths on this computer, not public)")


def _sampling_design(d):
    from trapgui.export.camtrap_dp_package import SAMPLING_DESIGNS

    d.add_argument("--sampling-design", choices=SAMPLING_DESIGNS, default="targeted",
                   help="the project's sampling design (default: targeted: a light attracts "
                   "the insects)")


def _license(d):
    d.add_argument("--license", metavar="ID",
                   help="licence of the data (GBIF accepts CC0-1.0, CC-BY-4.0, CC-BY-NC-4.0)")


def _absences(d):
    d.add_argument("--absences", choices=("observed", "none"), default="observed",
                   help="'observed' (default): also write absent records (count 0) for the taxa "
                   "this export recorded on other nights, on fully processed nights; 'none': "
                   "presences only")


def _margin(d):
    d.add_argument("--margin", type=float, default=0.1, metavar="F",
                   help="extra border around each box, as a fraction of the box size "
                   "(default 0.1; 0 = the box exactly)")


_OPTIONS = {"excel_bom": _excel, "title": _title, "contributors": _contributors,
            "data_license": _data_license, "media_license": _media_license,
            "media_url": _media_url, "sampling_design": _sampling_design, "license": _license,
            "absences": _absences, "margin": _margin}


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2022-06-21") from None


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text!r}")
    return value


def resolve_traps(db, refs: list[str] | None) -> list[int] | None:
    from trapgui.db.trap_metadata import resolve_trap

    return [resolve_trap(db, ref).id for ref in refs] if refs else None


def build_request(args, ctx):
    from trapgui.db.export_queries import ExportScope, Thresholds, pipeline_id_by_name
    from trapgui.export.dispatch import ExportRequest

    fmt = args.export_format
    pipeline_id = pipeline_id_by_name(ctx.db, args.pipeline) if args.pipeline else None
    scope = ExportScope.of(resolve_traps(ctx.db, args.trap), None, args.night, pipeline_id)
    settings = ctx.settings
    if fmt.counts_individuals:
        thresholds = Thresholds(
            args.min_score if args.min_score is not None else settings.detection_threshold,
            args.min_class_score if args.min_class_score is not None
            else settings.classification_threshold)
        row_det, row_cls = None, None
    else:
        thresholds = Thresholds(settings.detection_threshold,
                                args.min_class_score if fmt.key == "megadetector"
                                and args.min_class_score is not None
                                else settings.classification_threshold)
        row_det = args.min_score
        row_cls = args.min_class_score if fmt.key != "megadetector" else None
    options = {}
    for key, attr in (("excel_bom", "excel"), ("title", "title"),
                      ("contributors", "contributor"), ("data_license", "data_license"),
                      ("media_license", "media_license"), ("media_url", "media_url"),
                      ("sampling_design", "sampling_design"), ("license", "license"),
                      ("absences", "absences"), ("margin", "margin")):
        if hasattr(args, attr) and getattr(args, attr) is not None:
            options[key] = getattr(args, attr)
    return ExportRequest(fmt.key, Path(args.out), scope, thresholds, row_det, row_cls, options)


class _Progress:
    """Progress on one terminal line (only when stderr is a terminal)."""

    def __init__(self):
        self.live = sys.stderr.isatty()

    def __call__(self, event) -> None:
        from trapgui.core.jobs import LogLine, Progress

        if isinstance(event, Progress) and self.live:
            total = f"/{event.total:,}" if event.total else ""
            sys.stderr.write(f"\r\033[K{event.message or 'exporting'}: {event.done:,}{total} "
                             f"{event.unit}")
            sys.stderr.flush()
        elif isinstance(event, LogLine):
            self.clear()
            print(f"warning: {event.message}", file=sys.stderr)

    def clear(self) -> None:
        if self.live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def run(args, ctx) -> int:
    from trapgui.export.dispatch import run_export

    request = build_request(args, ctx)
    progress = _Progress()
    try:
        result = run_export(ctx.db, request, progress)
    finally:
        progress.clear()
    print(result.summary())
    if result.about_path:
        print(f"Thresholds, models and app version: {result.about_path}")
    if request.format == "detections":
        _detections_hints(ctx, request, result)
    return 0


def _detections_hints(ctx, request, result) -> None:
    from trapgui.export.csv_export import ExportFilter, images_in_several_pipelines, pipelines_of

    if result.rows.get("detections") == 0:
        print("No detections matched: process the images first (`trapgui process`), or loosen "
              "the filters.", file=sys.stderr)
    s = request.scope
    if s.pipeline_id is None:
        flt = ExportFilter(nights=s.nights, deployment_ids=s.deployment_ids,
                           min_detection_score=request.min_detection_score,
                           min_classification_score=request.min_label_score)
        doubled = images_in_several_pipelines(ctx.db, flt)
        if doubled:
            print(f"warning: {doubled} image{'s were' if doubled != 1 else ' was'} processed "
                  f"with several model configurations ({'; '.join(pipelines_of(ctx.db, flt))}): "
                  "their insects are in the file once per configuration. Export one with "
                  "--pipeline NAME.", file=sys.stderr)
