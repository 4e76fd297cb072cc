"""Start the desktop app: QApplication, the services facade, the main window.

``--smoke`` (used by the packaging checks) builds the window offscreen, opens a bundled image
as a trap folder in a temporary database, processes it with the built-in detector through the
same controllers a user drives, and exits 0 on success.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

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


def launch_gui(argv: list[str], services=None) -> int:
    args = _parse(argv)
    configure_runtime()
    if args.smoke:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from trapgui.gui.smoke import run_smoke

        return run_smoke()
    from PySide6.QtWidgets import QApplication

    from trapgui.gui.resources import app_icon
    from trapgui.gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("trapgui")
    app.setOrganizationName("trapgui")
    app.setWindowIcon(app_icon())
    apply_theme(app)
    if services is None:
        from trapgui.services.app_services import Services

        services = Services.create(config_dir=args.config_dir, data_dir=args.data_dir,
                                   db_path=args.db, reset_db=args.reset_db)
    from trapgui.gui.main_window import MainWindow

    window = MainWindow(services)
    window.show()
    window.start()
    code = app.exec()
    from trapgui.gui.background import wait_for_background

    wait_for_background(10)
    services.close()
    return code
