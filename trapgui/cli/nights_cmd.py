"""`trapgui nights [--trap PATH]`: a table of nights with image, processing and detection counts
(the same query, pipeline and thresholds as the window's trap tree)."""

from __future__ import annotations

from trapgui.core.errors import UserInputError
from trapgui.core.safe_text import printable

HEADERS = ("TRAP", "NIGHT", "FIRST", "LAST", "IMAGES", "PROCESSED", "DETECTIONS",
           "UNREADABLE", "MISSING")
_RIGHT = {"IMAGES", "PROCESSED", "DETECTIONS", "UNREADABLE", "MISSING"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "nights", help="list nights per trap with counts",
        description="List every night of every catalogued trap (or of the traps given) with "
        "its first and last capture and how many images, processed images and detections it "
        "has. Images without any capture time are listed as 'undated'.")
    p.add_argument("--trap", action="append", metavar="PATH",
                   help="only this trap folder (repeat for several)")
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


def format_table(rows) -> str:
    # two traps can share a folder name (every camera writes "DCIM"): show their paths then
    names: dict[str, set[int]] = {}
    for r in rows:
        names.setdefault(r.deployment_name, set()).add(r.deployment_id)
    cells = [HEADERS] + [(
        printable(r.deployment_name if len(names[r.deployment_name]) == 1
                  else r.deployment_path),
        r.date.isoformat() if r.date else "undated",
        r.start.strftime("%m-%d %H:%M") if r.start else "-",
        r.end.strftime("%m-%d %H:%M") if r.end else "-",
        str(r.images), str(r.processed), str(r.detections), str(r.unreadable), str(r.missing),
    ) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    lines = []
    for row in cells:
        lines.append("  ".join(c.rjust(w) if h in _RIGHT else c.ljust(w)
                               for c, w, h in zip(row, widths, HEADERS)).rstrip())
    return "\n".join(lines)


def run(args, ctx) -> int:
    import sys

    from trapgui.db.catalogue_queries import nights_table, results_pipeline_id
    from trapgui.pipeline.spec import PipelineSpec

    ids = resolve_traps(ctx.db, args.trap)
    s = ctx.settings
    # the same pipeline and thresholds as the window's trap tree and overview: one number
    try:
        wanted = PipelineSpec.from_settings(s).key
    except ValueError:  # settings unusable for processing: the latest results then
        wanted = None
    pipeline_id = results_pipeline_id(ctx.db, wanted)
    rows = nights_table(ctx.db, deployment_ids=ids, pipeline_id=pipeline_id,
                        min_score=s.detection_threshold,
                        min_label_score=s.classification_threshold)
    if not rows:
        print("No images in the catalogue yet. Run `trapgui scan FOLDER` to add a trap folder.")
        return 0
    print(format_table(rows))
    print(counts_note(rows[0]), file=sys.stderr)
    return 0


def counts_note(row) -> str:
    """What PROCESSED and DETECTIONS counted (stderr: the table stays machine-readable)."""
    return (f"DETECTIONS: boxes scoring >= {row.min_score:.2f} (the detection threshold in "
            "Settings); PROCESSED: images done or failed"
            + (" with the current settings' models." if row.pipeline_id is not None
               else " (nothing processed yet)."))
