"""`trapgui SUBCOMMAND ...`: the headless interface.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func(args, ctx) -> int``. Errors derived from TrapguiError print a clear message (no stack
trace) and exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import sys

from trapgui.core.errors import TrapguiError
from trapgui.core.safe_text import printable
from trapgui.version import __version__

COMMAND_MODULES = [
    "trapgui.cli.scan_cmd",
    "trapgui.cli.nights_cmd",
    "trapgui.cli.export_cmd",
    "trapgui.cli.trap_cmd",
    "trapgui.cli.process_cmd",
    "trapgui.cli.track_cmd",
    "trapgui.cli.review_cmd",
    "trapgui.cli.models_cmd",
    "trapgui.cli.worker_cmd",
]

GUI_FLAGS = {"--smoke"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trapgui",
        description="Find and identify insects in moth light-trap images. "
        "Run without a command to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"trapgui {__version__}")
    parser.add_argument("--db", metavar="FILE", help="catalogue database file "
                        "(default: in the user data folder; env TRAPGUI_DB)")
    parser.add_argument("--data-dir", metavar="DIR", help="user data folder for the database "
                        "and models (env TRAPGUI_DATA_DIR)")
    parser.add_argument("--config-dir", metavar="DIR", help="settings folder (env TRAPGUI_CONFIG_DIR)")
    parser.add_argument("--reset-db", action="store_true", help="if the database cannot be "
                        "opened, move it aside (renamed with a timestamp, never deleted) and start a new one")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        # no fallback: a command missing from a frozen build must fail loudly, not vanish
        importlib.import_module(name).register(subparsers)
    return parser


def wants_gui(argv: list[str]) -> bool:
    """No subcommand (only GUI flags such as --smoke or global options) means the desktop app."""
    if any(a in ("-h", "--help", "--version") for a in argv):
        return False
    rest = [a for a in argv if a not in GUI_FLAGS]
    parser = build_parser()
    try:
        # silent: a bad argument is reported once, by run_cli's own parse
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            ns, unknown = parser.parse_known_args(rest)
    except SystemExit:
        return False
    return ns.command is None and not unknown


def run_cli(argv: list[str]) -> int:
    from trapgui.cli.context import CliContext

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    ctx = CliContext.from_args(args)
    try:
        return int(args.func(args, ctx) or 0)
    except TrapguiError as exc:
        print(f"trapgui: error: {printable(exc, keep_newlines=True)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        clear = _database_error(exc, ctx)
        if clear is None:
            raise
        print(f"trapgui: error: {printable(clear, keep_newlines=True)}", file=sys.stderr)
        return clear.exit_code
    except KeyboardInterrupt:
        print("trapgui: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()


def _database_error(exc: Exception, ctx):
    """SQLite trouble that reached here without passing a session (which already maps it):
    a damaged page, a lock held past the busy timeout, a full disk, as the clear message."""
    from trapgui.db.database import user_error

    clear = user_error(exc, ctx.paths.db_path)
    if clear is not None and getattr(clear, "movable", False) and ctx._db is not None:
        ctx._db.distrust()
    return clear
