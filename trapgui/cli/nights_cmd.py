"""`trapgui nights [--trap PATH]`: a table of nights with image, processing and detection
counts, and once images are processed, the individuals (tracked insects, fixtures left out)
and MaxN of each night at the stated thresholds (``db.counts``, the numbers every export and
view gives)."""

from __future__ import annotations

import sys

from trapgui.core.errors import UserInputError
from trapgui.core.night_counts import PARTITION
from trapgui.core.safe_text import printable

# IMAGES = PROCESSED + FAILED + UNREADABLE + WAITING (core.night_counts), as in the window
HEADERS = ("TRAP", "NIGHT", "FIRST", "LAST", "IMAGES", "PROCESSED", "FAILED", "UNREADABLE",
           "WAITING", "DETECTIONS", "MISSING")
# once a model configuration processed the nights
COUNTED_HEADERS = ("TRAP", "NIGHT", "FIRST", "LAST", "IMAGES", "PROCESSED", "FAILED",
                   "UNREADABLE", "WAITING", "DETECTIONS", "INDIVIDUALS", "MAXN", "MISSING")
_RIGHT = {"IMAGES", "PROCESSED", "FAILED", "DETECTIONS", "INDIVIDUALS", "MAXN", "UNREADABLE",
          "WAITING", "MISSING"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "nights", help="list nights per trap with counts",
        description="List every night of every catalogued trap (or of the traps given) with "
        "its first and last capture, its images (IMAGES = PROCESSED + FAILED + UNREADABLE + "
        "WAITING; MISSING: deleted since) and detections. Images without any capture time are listed as 'undated'. Once images are "
        "processed, also the individuals (insects tracked across the night's images, "
        "fixtures left out) and MaxN (most individuals in one image) at the thresholds "
        "stated under the table.")
    p.add_argument("--trap", action="append", metavar="PATH",
                   help="only this trap folder (repeat for several)")
    p.add_argument("--pipeline", metavar="NAME", help="the model configuration to count "
                   "(default: the one the settings select, else the one that processed most)")
    p.add_argument("--detection-threshold", type=float, metavar="S",
                   help="detector score from which a detection counts (default: the setting)")
    p.add_argument("--classification-threshold", type=float, metavar="S",
                   help="classifier score from which a label counts (default: the setting)")
    p.add_argument("--regroup", action="store_true",
                   help="first move the traps whose nights were made with another cut-off "
                   "hour than the night_cutoff_hour setting to the setting, as the window does "
                   "at start (results and review decisions kept, individuals counted again)")
    p.set_defaults(func=run)


def resolve_traps(db, folders: list[str] | None) -> list[int] | None:
    from trapgui.db.catalogue_queries import find_deployment

    if not folders:
        return None
    ids = []
    for folder in folders:
        dep = find_deployment(db, folder)
        if dep is None:
            raise UserInputError(f"The folder {folder} is not in the catalogue.",
                                 hint=f"Run `trapgui scan {folder}` first.")
        ids.append(dep.id)
    return ids


def format_table(rows, counts=None) -> str:
    """``counts``: (trap, night) -> ``db.counts.NightCount`` of a model configuration; None
    before anything was processed (no individuals to show)."""
    # two traps can share a folder name (every camera writes "DCIM"): show their paths then
    names: dict[str, set[int]] = {}
    for r in rows:
        names.setdefault(r.deployment_name, set()).add(r.deployment_id)
    headers = HEADERS if counts is None else COUNTED_HEADERS
    cells = [headers]
    for r in rows:
        first = (printable(r.deployment_name if len(names[r.deployment_name]) == 1
                           else r.deployment_path),
                 r.date.isoformat() if r.date else "undated",
                 r.start.strftime("%m-%d %H:%M") if r.start else "-",
                 r.end.strftime("%m-%d %H:%M") if r.end else "-", str(r.images),
                 str(r.processed), str(r.failed), str(r.unreadable), str(r.waiting))
        if counts is None:
            cells.append(first + (str(r.detections), str(r.missing)))
            continue
        c = counts.get((r.deployment_id, r.night_id))
        individuals, max_n = (("-", "-") if r.night_id is None  # undated: never tracked
                              else (str(c.individuals), str(c.max_n)) if c else ("0", "0"))
        cells.append(first + (str(r.detections), individuals, max_n, str(r.missing)))
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        lines.append("  ".join(c.rjust(w) if h in _RIGHT else c.ljust(w)
                               for c, w, h in zip(row, widths, headers)).rstrip())
    return "\n".join(lines)


def counted_footer(pipeline_name: str, thresholds, untracked: int) -> str:
    lines = [f"Images: {PARTITION} (MISSING: deleted since, apart). "
             f"Model configuration: {printable(pipeline_name)}. Detections: boxes scoring at "
             f"least {thresholds.detection:.2f}, fixtures left out. Individuals: insects "
             "tracked across the night's images (fixtures left out) with a detection scoring at "
             f"least {thresholds.detection:.2f}; labels count from {thresholds.label:.2f}. "
             "MaxN: most individuals in one image."]
    if untracked:
        lines.append(f"{untracked} detection{'s' if untracked != 1 else ''} at that threshold "
                     "belong to no individual yet (nights still being processed): "
                     "`trapgui track` tracks the finished ones.")
    return "\n".join(lines)


def choose_pipeline(db, settings, name: str | None):
    """(id, name) of the configuration to count: the one named, else the one the window's
    trap tree shows (the settings' if it processed images, else the latest); (None, None) if
    nothing was processed."""
    from trapgui.db.catalogue_queries import results_pipeline_id
    from trapgui.db.export_queries import pipeline_id_by_name, pipeline_name
    from trapgui.pipeline.spec import PipelineSpec

    if name:
        return pipeline_id_by_name(db, name), name
    try:
        key = PipelineSpec.from_settings(settings).key
    except ValueError:  # settings unusable for processing: the latest results then
        key = None
    pid = results_pipeline_id(db, key)
    return (None, None) if pid is None else (pid, pipeline_name(db, pid))


def run(args, ctx) -> int:
    from trapgui.db.catalogue_queries import nights_table
    from trapgui.db.counts import count_individuals_per_night
    from trapgui.db.export_queries import ExportScope, Thresholds, untracked_detections

    from trapgui.cli.regroup import apply_cutoff, pending_note

    ids = resolve_traps(ctx.db, args.trap)
    hour = ctx.settings.night_cutoff_hour
    if args.regroup:
        print(apply_cutoff(ctx.db, hour, ids) or f"Nights start at {hour:02d}:00 in every trap.",
              file=sys.stderr)  # the table on stdout stays machine-readable
    else:
        note = pending_note(ctx.db, hour)
        if note:
            print(note, file=sys.stderr)
    pid, name = choose_pipeline(ctx.db, ctx.settings, args.pipeline)
    thresholds = Thresholds(
        ctx.settings.detection_threshold if args.detection_threshold is None
        else args.detection_threshold,
        ctx.settings.classification_threshold if args.classification_threshold is None
        else args.classification_threshold)
    if pid is None:
        rows = nights_table(ctx.db, deployment_ids=ids)
    else:
        rows = nights_table(ctx.db, deployment_ids=ids, pipeline_id=pid,
                            min_score=thresholds.detection, min_label_score=thresholds.label,
                            counted_only=True)
    if not rows:
        print("No images in the catalogue yet. Run `trapgui scan FOLDER` to add a trap folder.")
        return 0
    if pid is None:
        print(format_table(rows))
        print(f"Images: {PARTITION} (MISSING: deleted since, apart); nothing processed yet.",
              file=sys.stderr)
        return 0
    scope = ExportScope.of(ids)
    counts = count_individuals_per_night(ctx.db, scope, pid, thresholds)
    print(format_table(rows, counts))
    print(counted_footer(name, thresholds,
                         untracked_detections(ctx.db, scope, pid, thresholds.detection)),
          file=sys.stderr)  # what the table counted; the table stays machine-readable
    return 0
