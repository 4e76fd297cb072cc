"""`trapgui track [--trap PATH] [--night DATE] [--all]`: link detections into individuals.

Tracking runs by itself at the end of every processing run; this command runs it on demand:
after changing the tracking settings, or for nights a cancelled run left untracked. Without
options it tracks the nights that need it (detections that belong to no individual yet);
``--trap`` / ``--night`` re-track those nights, ``--all`` every night. Each night is one
transaction: Ctrl+C stops between nights, and a night cut short keeps its old occurrences.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading

from trapgui.core.safe_text import printable


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "track", help="link detections across a night's images into individuals",
        description="Track insects across each night's images into individuals "
        "(occurrences), with the tracking settings. Processing already does this at the end "
        "of every run; use this after changing the tracking settings or to finish nights a "
        "cancelled run left. Without options: the nights that need it. Individuals a person "
        "reviewed, and their fixture decisions, are kept.")
    p.add_argument("--trap", action="append", metavar="PATH",
                   help="re-track the nights of this trap folder (repeat for several)")
    p.add_argument("--night", action="append", metavar="YYYY-MM-DD", type=_date,
                   help="re-track the night that began on this evening (repeat for several)")
    p.add_argument("--all", action="store_true", help="re-track every night (of the traps given)")
    p.add_argument("--pipeline", metavar="NAME",
                   help="only this model configuration (default: every one that processed them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2022-06-21") from None


def run(args, ctx) -> int:
    from trapgui.cli.nights_cmd import resolve_traps
    from trapgui.cli.progress import TerminalProgress
    from trapgui.core.jobs import JobControl
    from trapgui.db import occurrence_store
    from trapgui.db.export_queries import ExportScope, pipeline_id_by_name, pipelines_in_scope
    from trapgui.pipeline.tracking_job import nights_to_track, track_catalogue_nights

    params = ctx.settings.tracking_params()
    traps = resolve_traps(ctx.db, args.trap)
    scope = ExportScope.of(traps, None, args.night)
    if args.pipeline:
        pipelines = [(pipeline_id_by_name(ctx.db, args.pipeline), args.pipeline)]
    else:
        pipelines = [(p.id, p.name) for p in pipelines_in_scope(ctx.db, scope)]
    if not pipelines:
        print("Nothing to track: no image of these traps is processed yet "
              "(`trapgui process FOLDER` finds the insects first).")
        return 0
    chosen = traps is not None or args.night is not None or args.all
    control = JobControl()
    previous = signal.signal(signal.SIGINT, lambda *_: control.cancel()) \
        if threading.current_thread() is threading.main_thread() else None
    total = problems = 0
    try:
        for pid, name in pipelines:
            if chosen:
                nights = occurrence_store.nights_of(ctx.db, traps, args.night)
                busy = set(nights) - set(occurrence_store.nights_complete(ctx.db, pid, nights))
                if busy:
                    print(f"note: {len(busy)} night{'s' if len(busy) != 1 else ''} still have "
                          "images queued or being processed; they are tracked with what is done "
                          "so far (and again when processing finishes).", file=sys.stderr)
            else:
                nights = nights_to_track(ctx.db, pid, None, traps)
            if not nights:
                continue
            bar = TerminalProgress(f"Tracking ({printable(name)})", unit="nights",
                                   quiet=args.quiet)
            try:
                summary = track_catalogue_nights(ctx.db, pid, nights, params, bar, control)
            finally:
                bar.close()
            total += len(summary.nights)
            problems += len(summary.problems)
            for n in summary.nights:
                print(f"{n.date}  {printable(name)}: {n.detections} detections -> "
                      f"{n.occurrences} occurrences, {n.fixtures} fixture"
                      f"{'s' if n.fixtures != 1 else ''}"
                      + (f", {n.pinned} reviewed kept" if n.pinned else "")
                      + f" ({n.total_s:.2f} s)")
            print(summary.describe())
            if summary.cancelled:
                print("Cancelled: the nights not yet tracked keep their previous individuals.")
                return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if not total and not problems:
        print("Every night is tracked already (`--all` tracks them again).")
    print("`trapgui nights` shows the individuals per night.")
    return 1 if problems else 0


