"""`trapgui scan FOLDER [FOLDER...]`: index trap folders into the catalogue."""

from __future__ import annotations

import argparse
import sys

from trapgui.cli.progress import TerminalProgress
from trapgui.core.errors import TrapguiError
from trapgui.core.jobs import Progress
from trapgui.core.safe_text import printable

_MAX_PROBLEMS_SHOWN = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "scan", help="index trap folders (images, capture times, nights)",
        description="Index one or more trap folders: every JPEG, PNG and TIFF file below each "
        "folder is catalogued with its capture time and grouped into nights. Scanning again "
        "adds new files, marks vanished ones missing and queues changed ones again. A folder "
        "whose subfolders are different trap sites (each with dated images of its own) becomes "
        "one trap per site (see --traps).")
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="a trap folder (one per trap)")
    add_traps_option(p)
    p.add_argument("--cutoff-hour", type=_hour, default=None, metavar="H",
                   help="hour (0-23, camera local time) at which one night ends and the next "
                   "begins (default: the night_cutoff_hour setting, 12 = noon); a catalogued "
                   "trap whose nights were made with another hour is regrouped, keeping its "
                   "results and review decisions")
    p.set_defaults(func=run)


def add_traps_option(p) -> None:
    p.add_argument("--traps", choices=("auto", "one", "subfolders"), default="auto",
                   help="auto (default): one trap per site subfolder when at least two "
                   "subfolders each hold dated images of their own (a subfolder named by a date "
                   "is a night, not a site), else one trap; one: the whole folder is one trap; "
                   "subfolders: one trap per site subfolder, also for a folder catalogued as "
                   "one trap (its images move to the new traps with their results). Images "
                   "outside the sites make a trap named after the folder")


def _hour(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 23:
        raise argparse.ArgumentTypeError(f"must be a whole hour from 0 to 23, not {text!r}")
    return value


def scan_progress(stream=None) -> tuple[TerminalProgress, object]:
    """A progress line for scans (silent off a terminal: the summary says it all) and the
    scanner callback ``(folder, phase, done, total)`` that feeds it."""
    line = TerminalProgress(unit="files", stream=stream, plain_every_s=None)

    def show(folder: str, phase: str, done: int, total: int) -> None:
        line.show(Progress(done, total or None, unit="files",
                           message=f"{printable(folder)}: {phase}"))

    return line, show


def summary(report) -> list[str]:
    r = report
    lines = [f"{printable(r.folder)}: {r.found} image{'s' * (r.found != 1)} in {r.nights} night{'s' * (r.nights != 1)} "
             f"({r.added} new, {r.changed} changed, {r.returned} back, {r.missing} missing, "
             f"{r.unchanged} unchanged); {r.unreadable} unreadable, {r.undated} undated "
             f"[{r.seconds:.1f} s]"]
    if r.cancelled:
        lines.append("  cancelled: scan again to finish")
    if r.file_time:
        lines.append(f"  warning: {r.file_time} image{'s' * (r.file_time != 1)} without a time "
                     "in EXIF or the file name: dated by the file's modification time, which "
                     "copying files changes (check their nights)")
    for rel, reason in r.new_problems[:_MAX_PROBLEMS_SHOWN]:
        lines.append(f"  unreadable: {printable(rel)}: {printable(reason)}")
    if len(r.new_problems) > _MAX_PROBLEMS_SHOWN:
        lines.append(f"  ... and {len(r.new_problems) - _MAX_PROBLEMS_SHOWN} more unreadable "
                     "files (see `trapgui nights`)")
    for rel, reason in r.folder_errors:
        lines.append(f"  folder not read: {printable(rel)}: {printable(reason)}")
    if r.own_traps:
        lines.append("  left out: " + ", ".join(f"{printable(t)}/" for t in r.own_traps)
                     + (" (traps of their own)" if len(r.own_traps) > 1 else
                        " (a trap of its own)"))
    if r.claimed:
        c = r.claimed
        lines.append(f"  taken over from the trap '{printable(c.from_name)}': {c.images} "
                     f"image{'s' * (c.images != 1)} with {c.detections} "
                     f"detection{'s' * (c.detections != 1)} and {c.individuals} "
                     f"individual{'s' * (c.individuals != 1)}")
    return lines


def traps_summary(traps) -> list[str]:
    """The lines of one folder's scan: a line naming the traps it made when it was split,
    each trap's summary, and the notes."""
    lines = []
    if traps.split:
        names = ", ".join(f"'{printable(r.name)}'" for r in traps.reports)
        lines.append(f"{printable(traps.folder)}: one trap per site subfolder: "
                     f"{len(traps.reports)} trap{'s' * (len(traps.reports) != 1)} ({names})")
    for report in traps.reports:
        lines.extend(summary(report))
    lines.extend(f"note: {note}" for note in traps.notes)
    return lines


def run(args, ctx) -> int:
    from trapgui.cli.regroup import apply_cutoff
    from trapgui.scan.site_scan import plan_traps, scan_traps

    cutoff = args.cutoff_hour if args.cutoff_hour is not None else ctx.settings.night_cutoff_hour
    line, show = scan_progress()
    failures = 0
    for folder in args.folders:
        try:
            plan = plan_traps(ctx.db, folder, args.traps)
            traps = scan_traps(ctx.db, plan, cutoff_hour=cutoff, progress=show)
        except TrapguiError as exc:
            if exc.exit_code != 2:  # not about this folder (the database): stop here
                raise
            line.close(clear=True)
            print(f"trapgui: error: {printable(exc, keep_newlines=True)}", file=sys.stderr)
            failures += 1
            continue
        sentence = apply_cutoff(ctx.db, cutoff, traps.deployment_ids, traps.reports)
        line.close(clear=True)
        print("\n".join(traps_summary(traps)))
        if sentence:
            print(sentence)
    return 2 if failures else 0
