"""The trap tree's context menu: a trap's Properties…, Rename trap… and Remove trap… (the
removal says how many images and results go with it, and asks first). Every query and
change runs on the job runner; failures reach the user as one sentence."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMenu, QMessageBox, QWidget

from trapgui.gui.error_dialog import show_error
from trapgui.gui.job_runner import job_runner


class TrapActions(QObject):
    """``changed`` after a rename, a saved property or a removal (the tree reloads)."""

    changed = Signal()
    removed = Signal(int)  # trap id

    def __init__(self, services, parent: QWidget):
        super().__init__(parent)
        self._services = services
        self._parent = parent
        self.busy = lambda: False  # the window says when a run is going (no removal then)
        self.dialog = None  # the dialog or box open now (tests drive it)

    def menu(self, trap_id: int, name: str) -> QMenu:
        menu = QMenu(self._parent)
        menu.setToolTipsVisible(True)
        props = menu.addAction("Properties…", lambda: self.open_properties(trap_id))
        props.setToolTip("Site, coordinates, camera clock, light and deployment of the trap")
        menu.addAction("Rename trap…", lambda: self.rename(trap_id, name))
        menu.addSeparator()
        remove = menu.addAction("Remove trap…", lambda: self.ask_remove(trap_id, name))
        remove.setEnabled(not self.busy())
        remove.setToolTip("Stop processing first" if self.busy() else
                          "Take the trap and its results out of the catalogue (the image "
                          "files stay on disk)")
        return menu

    # ---- properties ------------------------------------------------------------------------
    def open_properties(self, trap_id: int) -> None:
        from trapgui.gui.trap_properties_dialog import TrapPropertiesDialog

        dialog = TrapPropertiesDialog(self._services, trap_id, self._parent)
        dialog.saved.connect(lambda _info: self.changed.emit())
        self.dialog = dialog
        dialog.open()

    # ---- rename ----------------------------------------------------------------------------
    def rename(self, trap_id: int, name: str) -> None:
        dialog = QInputDialog(self._parent)
        dialog.setObjectName("renameTrapDialog")
        dialog.setWindowTitle("Rename trap")
        dialog.setLabelText(f"New name for the trap {name!r} (its folder stays as it is):")
        dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
        dialog.setTextValue(name)
        dialog.setOkButtonText("Rename")
        dialog.textValueSelected.connect(lambda text: self._do_rename(trap_id, name, text))
        self.dialog = dialog
        dialog.open()

    def _do_rename(self, trap_id: int, old: str, text: str) -> None:
        if text.strip() == old:
            return
        services = self._services
        job_runner().call(lambda: services.traps.rename(trap_id, text),
                          lambda _info: self.changed.emit(),
                          lambda exc: show_error(self._parent, "Cannot rename the trap", exc),
                          context=self)

    # ---- remove ----------------------------------------------------------------------------
    def ask_remove(self, trap_id: int, name: str) -> None:
        """Count what goes with the trap, then ask."""
        if self.busy():
            return
        services = self._services
        job_runner().call(lambda: services.traps.contents(trap_id),
                          lambda contents: self._confirm_remove(trap_id, name, contents),
                          lambda exc: show_error(self._parent, "Cannot remove the trap", exc),
                          context=self)

    def _confirm_remove(self, trap_id: int, name: str, contents) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Remove trap",
                          f"Remove the trap {name!r} from the catalogue?", parent=self._parent)
        box.setObjectName("removeTrapBox")
        box.setInformativeText(f"Its {contents.describe()} go with it. The image files stay "
                               "on disk: opening the folder again adds the trap back, "
                               "unprocessed.")
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda b: self._remove(trap_id) if b is remove else None)
        self.dialog = box
        box.open()

    def _remove(self, trap_id: int) -> None:
        if self.busy():
            show_error(self._parent, "Cannot remove the trap",
                       RuntimeError("Processing is running: stop it, then remove the trap."))
            return
        services = self._services

        def done(_removed) -> None:
            self.removed.emit(trap_id)
            self.changed.emit()

        job_runner().call(lambda: services.traps.remove(trap_id), done,
                          lambda exc: show_error(self._parent, "Cannot remove the trap", exc),
                          context=self)
