"""Entry point: `trapgui` with no arguments starts the desktop app; with a subcommand it runs
headless (see `trapgui --help`). This is the one module that wires the layers together.

Heavy packages (torch, the GUI) are imported only when needed, so `trapgui --help` and the
window both appear quickly.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    # A frozen (PyInstaller) app re-launches itself for each worker process of the scanner's
    # header-reading pool; freeze_support() turns those launches into workers, not new apps.
    import multiprocessing

    multiprocessing.freeze_support()
    argv = list(sys.argv[1:] if argv is None else argv)
    from trapgui.cli.main import run_cli, wants_gui

    if wants_gui(argv):
        from trapgui.gui.launch import launch_gui

        return launch_gui(argv)
    return run_cli(argv)


def entry() -> None:
    """The `trapgui` command and `python -m trapgui`: ``main``, then, after a headless
    command that loaded torch, leave without the interpreter's teardown (freeing torch's
    and torchvision's modules took 1-2 s after the work was done). Everything is written by
    then: the catalogue's transactions are committed, the output flushed here."""
    argv = sys.argv[1:]
    code = main(argv)
    if "torch" not in sys.modules or _wants_gui(argv):
        raise SystemExit(code)
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code if isinstance(code, int) else 1)


def _wants_gui(argv: list[str]) -> bool:
    from trapgui.cli.main import wants_gui

    return wants_gui(argv)


if __name__ == "__main__":
    entry()
