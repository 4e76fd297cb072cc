"""Errors become dialogs with a sentence the user can act on, never a stack trace.

A TrapguiError's text is written for the user. Anything else is a bug: the dialog says so in
plain words, and the traceback goes to the log file (and stderr), where a support request can
pick it up via Help ▸ About ▸ Copy diagnostics.
"""

from __future__ import annotations

import logging
import traceback

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

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
