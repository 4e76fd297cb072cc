"""Look and feel. Fusion follows the system's light or dark colour scheme on every platform
(Qt ≥ 6.5), and every widget here paints with palette roles, never fixed colours."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication


def apply_theme(app: QApplication) -> None:
    # the platform styles of Windows and macOS already follow the system theme; on Linux the
    # default may be a bare "Windows" style that ignores it
    if app.style().name().lower() in ("windows", ""):
        app.setStyle("Fusion")
