"""Start the Qt application (placeholder main window until the GUI issue lands)."""

from __future__ import annotations

import sys


def launch_gui(argv: list[str]) -> int:
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QMainWindow()
    window.setWindowTitle("trapgui")
    window.setCentralWidget(QLabel("Drop a trap folder here"))
    window.resize(1200, 800)
    window.show()
    if "--smoke" in argv:
        return 0
    return app.exec()
