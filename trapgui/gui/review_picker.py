"""The relabel picker: a type-ahead field over the installed classifier's labels, insect
orders, the catalogue's labels and the user's morphospecies ("Noctuidae sp. A"). A name that
matches nothing becomes a new morphospecies when applied (the dialog says so first)."""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (QCompleter, QDialog, QDialogButtonBox, QLabel, QLineEdit,
                               QVBoxLayout)


class RelabelPicker(QDialog):
    chosen = Signal(str, object)  # label, rank (None: the service decides)

    def __init__(self, choices, parent=None, initial: str = "", count: int = 1):
        super().__init__(parent)
        self.setWindowTitle("Relabel")
        self.setModal(True)
        self.prompt = QLabel("", self)
        self.prompt.setWordWrap(True)
        self.edit = QLineEdit(initial, self)
        self.edit.setObjectName("relabelEdit")
        self.edit.setPlaceholderText("Start typing a name…")
        self._names = QStringListModel(self)
        self.completer = QCompleter(self._names, self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setMaxVisibleItems(12)
        self.edit.setCompleter(self.completer)
        self.hint = QLabel("", self)
        self.hint.setObjectName("relabelHint")
        self.hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Apply")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.completer.activated.connect(lambda _text: self._update())
        self.edit.textChanged.connect(lambda _t: self._update())
        layout = QVBoxLayout(self)
        layout.addWidget(self.prompt)
        layout.addWidget(self.edit)
        layout.addWidget(self.hint)
        layout.addWidget(buttons)
        self.set_choices(choices)
        self.start(initial, count)
        self.resize(460, self.sizeHint().height())

    def set_choices(self, choices) -> None:
        self.choices = choices
        self._by_text = {c.text: c for c in choices}
        self._by_label = {c.label.lower(): c for c in choices}
        self._names.setStringList(sorted(self._by_text, key=str.lower))

    def start(self, typed: str, count: int) -> None:
        """Ready for the next occurrences: ``typed`` already in the field."""
        what = f"{count} occurrences" if count != 1 else "this occurrence"
        self.prompt.setText(f"New label for {what} (species, genus, family, order, or your "
                            "own morphospecies such as “Noctuidae sp. A”):")
        self.edit.setText(typed)
        self._update()

    def resolve(self) -> tuple[str, str | None, bool]:
        """(label, rank, new morphospecies?) of what is typed."""
        text = " ".join(self.edit.text().split())
        choice = self._by_text.get(text) or self._by_label.get(text.lower())
        if choice is not None:
            return choice.label, choice.rank, False
        return text, None, bool(text)

    def _update(self) -> None:
        label, rank, new = self.resolve()
        self.ok.setEnabled(bool(label))
        if not label:
            self.hint.setText("")
        elif new:
            self.hint.setText(f"“{label}” is new: it becomes one of your morphospecies.")
        else:
            self.hint.setText(f"{label}" + (f" · {rank}" if rank else ""))

    def _accept(self) -> None:
        label, rank, _new = self.resolve()
        if not label:
            return
        self.chosen.emit(label, rank)
        self.accept()
