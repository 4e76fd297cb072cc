"""Errors become dialogs with a sentence the user can act on, never a stack trace.

A TrapguiError's text is written for the user. Anything else is a bug: the dialog says so in
plain words, and the traceback goes to the log file (and stderr), where a support request can
pick it up via Help ▸ About ▸ Copy diagnostics.
"""

from __future__ import annotations

import logging
import traceback

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from trapgui.core.errors import TrapguiError

log = logging.getLogger("trapgui.gui")


def user_message(exc: BaseException) -> str:
    if isinstance(exc, TrapguiError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory. Close other programs or lower the batch sizes."
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}."
    return (f"An unexpected problem occurred ({type(exc).__name__}: {exc}).\n"
            "Your data is safe. If it happens again, please report it with the details from "
            "Help ▸ About ▸ Copy diagnostics.")


def show_error(parent: QWidget | None, title: str, exc: BaseException, *,
               logged: bool = False) -> QMessageBox:
    """Non-blocking error box (open(), not exec()) so tests and running work never stall.
    ``logged``: the caller has written the traceback to the log already."""
    if not isinstance(exc, TrapguiError) and not logged:
        log.error("%s: %s", title, "".join(traceback.format_exception(exc)))
    box = QMessageBox(QMessageBox.Icon.Warning, title, user_message(exc),
                      QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    box.open()
    return box


def report_error(title: str, exc: BaseException, *, show: bool = True) -> None:
    """An error nobody handled (the job runner's last resort): its traceback to the log, its
    sentence in a dialog, one dialog at a time (a query failing every second must not bury
    the window)."""
    global _open_box
    if not isinstance(exc, TrapguiError):
        log.error("Unexpected error in %s", title or "a background task",
                  exc_info=(type(exc), exc, exc.__traceback__))
    if not show or not isinstance(QApplication.instance(), QApplication):
        return
    if _open_box is not None and shiboken6.isValid(_open_box) and _open_box.isVisible():
        return
    heading = f"Problem while {title}" if title else "Something went wrong"
    _open_box = show_error(QApplication.activeWindow(), heading, exc, logged=True)


_open_box: QMessageBox | None = None
