"""Pick the occurrence of the night a detection belongs to (review's "Move to…"): the night's
other occurrences as a filterable list (type part of a label or an id), Enter moves. It lists
the rows the grid already holds: nothing is read here."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QVBoxLayout)


def describe(row) -> str:
    when = f" · first seen {row.first_seen:%H:%M:%S}" if row.first_seen else ""
    frames = f"{row.n_detections} frame{'s' if row.n_detections != 1 else ''}"
    return f"{row.id} · {row.final_label or 'unidentified'} · {frames}{when}"


class ReviewMoveDialog(QDialog):
    chosen = Signal(int)  # the occurrence the detection moves to

    def __init__(self, rows, detection_id: int, from_occurrence: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Move detection {detection_id}")
        self.info = QLabel(f"Detection {detection_id} is another individual's frame: choose the "
                           f"occurrence it belongs to (it leaves occurrence {from_occurrence}).",
                           self)
        self.info.setWordWrap(True)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Type part of a label or an occurrence number")
        self.filter.setClearButtonEnabled(True)
        self.list = QListWidget(self)
        for row in rows:
            if row.id == from_occurrence:
                continue
            item = QListWidgetItem(describe(row), self.list)
            item.setData(Qt.ItemDataRole.UserRole, row.id)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.move_button = buttons.addButton("Move here", QDialogButtonBox.ButtonRole.AcceptRole)
        self.move_button.clicked.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.filter.textChanged.connect(self._filter)
        self.filter.returnPressed.connect(self._accept)
        self.list.itemActivated.connect(lambda _item: self._accept())
        self.list.currentRowChanged.connect(lambda _r: self._enable())
        layout = QVBoxLayout(self)
        layout.addWidget(self.info)
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)
        self.resize(460, 420)
        if self.list.count():
            self.list.setCurrentRow(0)
        else:
            self.info.setText("This night has no other occurrence to move it to.")
        self._enable()
        self.filter.setFocus()

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        first = None
        for k in range(self.list.count()):
            item = self.list.item(k)
            hide = not all(w in item.text().lower() for w in words)
            item.setHidden(hide)
            if not hide and first is None:
                first = k
        # the number typed wins: "12" picks occurrence 12, not the first that mentions 12
        exact = next((k for k in range(self.list.count()) if not self.list.item(k).isHidden()
                      and str(self.list.item(k).data(Qt.ItemDataRole.UserRole)) == text.strip()),
                     first)
        self.list.setCurrentRow(exact if exact is not None else -1)
        self._enable()

    def _enable(self) -> None:
        item = self.list.currentItem()
        self.move_button.setEnabled(item is not None and not item.isHidden())

    def target(self) -> int | None:
        item = self.list.currentItem()
        if item is None or item.isHidden():
            return None
        return int(item.data(Qt.ItemDataRole.UserRole))

    def _accept(self) -> None:
        target = self.target()
        if target is None:
            return
        self.chosen.emit(target)
        self.accept()
