"""Help ▸ About: versions (app, Python, torch, Qt), devices and paths, and a button that
copies them all for a support request. Gathering them imports torch: done in the background."""

from __future__ import annotations

import html

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QPushButton, QTextBrowser,
                               QVBoxLayout)

from trapgui.gui.job_runner import job_runner
from trapgui.gui.resources import app_icon
from trapgui.version import __version__


class AboutDialog(QDialog):
    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About trapgui")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._services = services
        self.info: dict[str, str] = {"trapgui": __version__,
                                     "Qt": f"{qVersion()} (PySide6 {pyside_version})"}
        icon = QLabel(self)
        icon.setPixmap(app_icon().pixmap(72, 72))
        title = QLabel(f"<h2>trapgui {__version__}</h2>Find and identify insects in moth "
                       "light-trap images.", self)
        title.setWordWrap(True)
        self.details = QTextBrowser(self)
        self.details.setObjectName("aboutDetails")
        self.details.setOpenLinks(False)
        self.details.setToolTip("Versions, devices and paths of this installation")
        self.details.setPlainText("Collecting versions and devices…")
        self.copy_button = QPushButton("Copy diagnostics", self)
        self.copy_button.setObjectName("copyDiagnostics")
        self.copy_button.setToolTip("Copy all of this to the clipboard, to paste into a "
                                    "support request")
        self.copy_button.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(icon)
        layout.addWidget(title)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)
        self.resize(640, 460)
        self._show()
        job_runner().call(services.diagnostics, self._loaded, self._failed, context=self)

    def _loaded(self, info: dict) -> None:
        qt = self.info["Qt"]
        self.info = {}
        for key, value in info.items():
            self.info[key] = value
            if key == "Python":
                self.info["Qt"] = qt
        self._show()

    def _failed(self, exc: BaseException) -> None:
        self.info["Diagnostics"] = f"could not be collected: {exc}"
        self._show()

    def _show(self) -> None:
        rows = "".join(f"<tr><td><b>{html.escape(k)}</b>&nbsp;&nbsp;</td>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in self.info.items())
        self.details.setHtml(f"<table>{rows}</table>")

    def text(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.info.items())

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        self.copy_button.setText("Copied")
