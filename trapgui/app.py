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


if __name__ == "__main__":
    raise SystemExit(main())
