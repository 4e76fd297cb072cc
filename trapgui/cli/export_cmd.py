"""`trapgui export detections --out FILE.csv [filters]`: results as CSV (docs/csv-columns.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export results (CSV)",
                              description="Export results from the catalogue.")
    kinds = p.add_subparsers(dest="export_kind", metavar="WHAT", required=True)
    d = kinds.add_parser(
        "detections", help="one row per detection",
        description="Write one CSV row per detection: trap, night, image, capture time, box, "
        "detector score, best label and score per rank, and the models used. Columns are "
        "described in docs/csv-columns.md.")
    d.add_argument("--out", required=True, metavar="FILE.csv", help="file to write")
    d.add_argument("--night", action="append", type=_date, metavar="YYYY-MM-DD",
                   help="only this night (the evening's date; repeat for several)")
    d.add_argument("--trap", action="append", metavar="PATH",
                   help="only this trap folder (repeat for several)")
    d.add_argument("--min-score", type=_score, metavar="X",
                   help="only detections with a detector score of at least X (0-1)")
    d.add_argument("--min-class-score", type=_score, metavar="X",
                   help="only detections whose final label has a score of at least X (0-1)")
    d.add_argument("--pipeline", metavar="NAME",
                   help="only detections made with this model configuration (the value of the "
                   "`pipeline` column, e.g. 'builtin + moth_binary_resnet50_2024'); needed when "
                   "images were processed with several")
    d.add_argument("--excel", action="store_true",
                   help="start the file with a byte-order mark so Excel reads accents correctly")
    d.set_defaults(func=run)


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


def run(args, ctx) -> int:
    from trapgui.cli.nights_cmd import resolve_traps
    from trapgui.export.csv_export import (ExportFilter, export_detections,
                                           images_in_several_pipelines, pipeline_id_by_name,
                                           pipelines_of)

    pipeline_id = pipeline_id_by_name(ctx.db, args.pipeline) if args.pipeline else None
    flt = ExportFilter(nights=args.night, deployment_ids=resolve_traps(ctx.db, args.trap),
                       pipeline_id=pipeline_id, min_detection_score=args.min_score,
                       min_classification_score=args.min_class_score)
    live = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if live:
            sys.stderr.write(f"\rexporting {done}/{total} detections")
            sys.stderr.flush()

    report = export_detections(ctx.db, args.out, flt, excel_bom=args.excel, progress=progress)
    if live:
        sys.stderr.write("\r\033[K")
    print(f"Wrote {report.rows} detection{'s' * (report.rows != 1)} to {report.path}")
    if report.rows == 0:
        print("No detections matched: process the images first (`trapgui process`), or loosen "
              "the filters.", file=sys.stderr)
    doubled = images_in_several_pipelines(ctx.db, flt) if pipeline_id is None else 0
    if doubled:
        print(f"warning: {doubled} image{'s were' if doubled != 1 else ' was'} processed with "
              f"several model configurations ({'; '.join(pipelines_of(ctx.db, flt))}): their "
              "insects are in the file once per configuration. Export one with --pipeline NAME.",
              file=sys.stderr)
    return 0
