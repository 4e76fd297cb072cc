"""The question asked when an opened folder's subfolders are different trap sites: one trap
per subfolder, or one trap for everything (with "Remember my choice", kept in Settings).

Window-modal and non-blocking (``open``): the answer arrives through ``answered``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QMessageBox

SPLIT, ONE = "subfolders", "one"


class TrapChoiceDialog(QMessageBox):
    answered = Signal(str, bool)  # choice ("subfolders" | "one"), remember it

    def __init__(self, folder_name: str, plan, parent=None):
        super().__init__(parent)
        self.setObjectName("trapChoiceDialog")
        self.setWindowTitle("Trap sites in this folder")
        self.setIcon(QMessageBox.Icon.Question)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = plan.layout
        outside = layout.images_outside_sites
        rest = (f" The {outside:,} image{'s' * (outside != 1)} outside them make a trap named "
                f"“{folder_name}”." if outside else "")
        if plan.already_one_trap:
            self.setText(f"“{folder_name}” is one trap, but it holds {layout.describe()}.")
            self.setInformativeText(
                "Each subfolder holds dated images of its own. Split it into one trap per "
                "subfolder? Their images move with their detections, individuals and review "
                "decisions; nothing is processed again." + rest)
            split_text, one_text = "One trap per subfolder", "Keep one trap"
        else:
            self.setText(f"This folder holds {layout.describe()}.")
            self.setInformativeText(
                "Each subfolder holds dated images of its own, as a trap's camera writes them. "
                "Make one trap per subfolder (each with its own nights, counts and exports), or "
                "one trap of everything?" + rest)
            split_text, one_text = "One trap per subfolder", "One trap for everything"
        self.split_button = self.addButton(split_text, QMessageBox.ButtonRole.AcceptRole)
        self.one_button = self.addButton(one_text, QMessageBox.ButtonRole.RejectRole)
        self.split_button.setObjectName("splitTraps")
        self.one_button.setObjectName("oneTrap")
        self.setDefaultButton(self.split_button)
        self.setEscapeButton(self.one_button)  # Esc keeps what a folder always was: one trap
        self.remember = QCheckBox("Remember my choice (change it in Tools ▸ Settings)", self)
        self.remember.setObjectName("rememberTrapChoice")
        self.setCheckBox(self.remember)
        self.finished.connect(self._finished)

    def _finished(self, _result: int) -> None:
        choice = SPLIT if self.clickedButton() is self.split_button else ONE
        self.answered.emit(choice, self.remember.isChecked())
