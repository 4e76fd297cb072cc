"""Start the desktop app: QApplication, the services facade, the main window.

``--smoke`` (used by the packaging checks) builds the window offscreen, opens a bundled image
as a trap folder in a temporary database, processes it with the built-in detector through the
same controllers a user drives, and exits 0 on success.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import threading
import time
from pathlib import Path

T0 = time.perf_counter()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trapgui", add_help=False)
    parser.add_argument("--db")
    parser.add_argument("--data-dir")
    parser.add_argument("--config-dir")
    parser.add_argument("--reset-db", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    ns, _unknown = parser.parse_known_args(argv)
    return ns


GIL_SWITCH_INTERVAL_S = 0.001


def configure_runtime() -> None:
    """Make the GUI thread win the GIL back quickly from busy worker threads.

    PySide releases the GIL around Qt calls; with Python's default 5 ms switch interval, each
    re-acquisition while device workers run can wait that long, and a repaint making dozens
    of calls stalls visibly. Torch and decoding release the GIL for their heavy parts, so a
    shorter interval costs the workers little."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def prepare_application(app) -> None:
    """What the window needs from the runtime, once its QApplication exists: the GIL switch
    interval, and garbage collection on the GUI thread only (``gui.collector``)."""
    global _collector
    configure_runtime()
    if _collector is None:
        from trapgui.gui.collector import GuiThreadCollector

        _collector = GuiThreadCollector(app)


_collector = None


def launch_gui(argv: list[str], services=None) -> int:
    args = _parse(argv)
    if args.smoke:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from trapgui.gui.smoke import run_smoke

        return run_smoke()
    from PySide6.QtWidgets import QApplication

    from trapgui.gui.resources import app_icon
    from trapgui.gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    prepare_application(app)
    app.setApplicationName("trapgui")
    app.setOrganizationName("trapgui")
    app.setWindowIcon(app_icon())
    apply_theme(app)
    if services is None:
        from trapgui.services.app_services import Services

        services = Services.create(config_dir=args.config_dir, data_dir=args.data_dir,
                                   db_path=args.db, reset_db=args.reset_db)
    from trapgui.gui.main_window import MainWindow

    log_file = configure_logging(services.paths.logs_dir, verbose=args.verbose)
    logging.getLogger("trapgui").info("trapgui starting; log file %s", log_file)
    window = MainWindow(services)
    window.show()
    window.start()
    code = app.exec()
    from trapgui.gui.job_runner import job_runner

    job_runner().shutdown(30)
    services.close()
    return code


LOG_FILE = "trapgui.log"
LOG_BYTES = 2_000_000
LOG_BACKUPS = 3


def configure_logging(logs_dir: Path, *, verbose: bool = False) -> Path | None:
    """The window's log: a rotating file in the app's logs folder (what Help ▸ About points a
    support request to), warnings also on stderr. Uncaught exceptions of any thread land there
    too: a windowed app has no console to print them to."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    path: Path | None = logs_dir / LOG_FILE
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return path  # configured already (a second window in the same process)
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError:
        path, handler = None, logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s "
                                           "%(name)s: %(message)s"))
    root.addHandler(handler)
    if path is not None:
        console = logging.StreamHandler()
        console.setLevel(logging.WARNING)
        root.addHandler(console)
    log = logging.getLogger("trapgui")

    def excepthook(kind, exc, tb):
        log.error("Uncaught exception", exc_info=(kind, exc, tb))

    def thread_excepthook(args):
        log.error("Uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = excepthook  # PySide reports exceptions raised in slots through it
    threading.excepthook = thread_excepthook
    return path
