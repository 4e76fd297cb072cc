"""`trapgui scan FOLDER [FOLDER...]`: index trap folders into the catalogue."""

from __future__ import annotations

import argparse
import sys

from trapgui.core.errors import TrapguiError
from trapgui.core.safe_text import printable

_MAX_PROBLEMS_SHOWN = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "scan", help="index trap folders (images, capture times, nights)",
        description="Index one or more trap folders: every JPEG, PNG and TIFF file below each "
        "folder is catalogued with its capture time and grouped into nights. Scanning again "
        "adds new files, marks vanished ones missing and queues changed ones again.")
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="a trap folder (one per trap)")
    p.add_argument("--cutoff-hour", type=_hour, default=None, metavar="H",
                   help="hour (0-23, camera local time) at which one night ends and the next "
                   "begins (default: the night_cutoff_hour setting, 12 = noon)")
    p.set_defaults(func=run)


def _hour(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 23:
        raise argparse.ArgumentTypeError(f"must be a whole hour from 0 to 23, not {text!r}")
    return value


class _ProgressLine:
    """One line on a terminal, rewritten in place; silent when stderr is not a terminal."""

    def __init__(self, stream=None):
        # resolved at call time: sys.stderr may have been replaced since import
        self.stream = stream = stream or sys.stderr
        self.live = stream.isatty()
        self.width = 0

    def show(self, label: str, phase: str, done: int, total: int) -> None:
        if not self.live:
            return
        label = printable(label)
        text = f"{label}: {phase} {done}/{total} files" if total else f"{label}: {phase}..."
        self.stream.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.stream.flush()

    def clear(self) -> None:
        if self.live and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


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
    return lines


def run(args, ctx) -> int:
    from trapgui.scan.indexer import scan_folder

    cutoff = args.cutoff_hour if args.cutoff_hour is not None else ctx.settings.night_cutoff_hour
    line = _ProgressLine()
    failures = 0
    for folder in args.folders:
        try:
            report = scan_folder(ctx.db, folder, cutoff_hour=cutoff,
                                 progress=lambda ph, d, t, f=folder: line.show(f, ph, d, t))
        except TrapguiError as exc:
            if exc.exit_code != 2:  # not about this folder (the database): stop here
                raise
            line.clear()
            print(f"trapgui: error: {printable(exc, keep_newlines=True)}", file=sys.stderr)
            failures += 1
            continue
        line.clear()
        print("\n".join(summary(report)))
    return 2 if failures else 0
