"""A trap's properties: name, site, position, camera clock, trap and light, deployment span,
notes. Opened from the trap tree's context menu (Properties…).

Everything that touches the catalogue or the time-zone database runs in the background
(``services.traps``): loading, live validation (each problem shown under its field, Save
disabled while there is one, a preview of the first photo's exact time on the typed clock),
and saving. Only changed fields are sent; the service checks them again and saves nothing
when one is wrong.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from trapgui.core.trap_metadata import FIELDS
from trapgui.gui.job_runner import job_runner

GROUPS = (("Name and site", ("name", "site_name")),
          ("Location (WGS84)", ("latitude", "longitude", "coordinate_uncertainty_m")),
          ("Camera clock", ("clock",)),
          ("Deployment", ("deployment_start", "deployment_end")),
          ("Description", ("trap_description", "light_description", "notes")))
MULTILINE = {"trap_description", "light_description", "notes"}
LABELS = {"clock": "Time zone or offset", "trap_description": "Trap"}  # the rest: FIELDS
ERROR_STYLE = "color: #c62828;"
VALIDATE_DELAY_MS = 250


class TrapPropertiesDialog(QDialog):
    saved = Signal(object)  # the updated services.trap_service.TrapInfo

    def __init__(self, services, trap_id: int, parent=None):
        super().__init__(parent)
        self.setObjectName("trapPropertiesDialog")
        self.setWindowTitle("Trap properties")
        self._services = services
        self._trap_id = trap_id
        self._info = None
        self._generation = 0
        self._problems: dict[str, str] = {}
        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        specs = {f.key: f for f in FIELDS}

        self.folder_label = QLabel("Loading…", self)
        self.folder_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.folder_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_label)
        labels = []
        for title, keys in GROUPS:
            box = QGroupBox(title, self)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
            for key in keys:
                spec = specs[key]
                editor = self._editor(key, spec)
                error = QLabel(self)
                error.setStyleSheet(ERROR_STYLE)
                error.setWordWrap(True)
                error.setVisible(False)
                column = QVBoxLayout()
                column.setSpacing(2)
                column.addWidget(editor)
                column.addWidget(error)
                if key == "clock":
                    self.clock_preview = QLabel(self)
                    self.clock_preview.setWordWrap(True)
                    column.addWidget(self.clock_preview)
                label = QLabel(LABELS.get(key, spec.label) + ":", self)
                labels.append(label)
                form.addRow(label, column)
                self.editors[key], self.errors[key] = editor, error
            layout.addWidget(box)
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:  # one column of labels across the groups
            label.setMinimumWidth(width)
        self.form_error = QLabel(self)
        self.form_error.setStyleSheet(ERROR_STYLE)
        self.form_error.setWordWrap(True)
        self.form_error.setVisible(False)
        layout.addWidget(self.form_error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel, self)
        self.save_button = self.buttons.button(QDialogButtonBox.Save)
        self.save_button.setToolTip("Check and save the trap's metadata")
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self._validate)
        self._set_enabled(False)
        self.resize(560, self.sizeHint().height())
        job_runner().call(lambda: self._services.traps.get(self._trap_id), self._loaded,
                    self._load_failed, context=self)
        job_runner().call(lambda: self._services.traps.time_zone_names(), self._zones,
                    lambda exc: None, context=self)

    # -- building ----------------------------------------------------------------------------
    def _editor(self, key: str, spec) -> QWidget:
        if key in MULTILINE:
            editor = QPlainTextEdit(self)
            editor.setTabChangesFocus(True)
            editor.setFixedHeight(56)
            editor.setPlaceholderText(spec.example)
            editor.textChanged.connect(self._changed)
        else:
            editor = QLineEdit(self)
            editor.setPlaceholderText(spec.example)
            editor.textChanged.connect(self._changed)
        editor.setToolTip(spec.help)
        editor.setObjectName(f"field_{key}")
        return editor

    def _zones(self, names: list[str]) -> None:
        completer = QCompleter(names, self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        completer.setFilterMode(Qt.MatchContains)
        self.editors["clock"].setCompleter(completer)

    # -- values ------------------------------------------------------------------------------
    def text(self, key: str) -> str:
        editor = self.editors[key]
        return editor.toPlainText() if isinstance(editor, QPlainTextEdit) else editor.text()

    def set_text(self, key: str, value: str) -> None:
        editor = self.editors[key]
        if isinstance(editor, QPlainTextEdit):
            editor.setPlainText(value)
        else:
            editor.setText(value)

    def texts(self) -> dict[str, str]:
        return {key: self.text(key) for key in self.editors}

    def changes(self) -> dict[str, str]:
        """The fields that differ from the stored values (what Save sends)."""
        if self._info is None:
            return {}
        return {k: v for k, v in self.texts().items()
                if v.strip() != self._info.values.get(k, "").strip()}

    # -- loading -----------------------------------------------------------------------------
    def _loaded(self, info) -> None:
        self._info = info
        self.setWindowTitle(f"Trap properties — {info.name}")
        self.folder_label.setText(f"Folder: {info.path}\n{info.images:,} images in "
                                  f"{info.nights} night{'s' if info.nights != 1 else ''}")
        for key in self.editors:
            self.set_text(key, info.values.get(key, ""))
        if info.first_image:
            self.editors["deployment_start"].setPlaceholderText(
                f"first image: {info.first_image:%Y-%m-%d %H:%M}")
        if info.last_image:
            self.editors["deployment_end"].setPlaceholderText(
                f"last image: {info.last_image:%Y-%m-%d %H:%M}")
        self._set_enabled(True)
        self._validate()

    def _load_failed(self, exc: BaseException) -> None:
        self.folder_label.setText(f"Cannot read this trap: {exc}")
        self.folder_label.setStyleSheet(ERROR_STYLE)

    def _set_enabled(self, enabled: bool) -> None:
        for editor in self.editors.values():
            editor.setEnabled(enabled)
        self.save_button.setEnabled(enabled and not self._problems)

    # -- validation --------------------------------------------------------------------------
    def _changed(self) -> None:
        if self._info is not None:
            self._timer.start()

    def _validate(self) -> None:
        self._generation += 1
        generation, texts = self._generation, self.texts()
        sample = self._info.first_image if self._info else None
        self.save_button.setEnabled(False)  # until this form is known to be valid

        def done(result) -> None:
            if generation == self._generation:
                self._show_problems(*result)

        job_runner().call(lambda: self._services.traps.check_form(texts, sample), done,
                    lambda exc: self._show_problems({"": str(exc)}, ""), context=self)

    def _show_problems(self, problems: dict[str, str], preview: str) -> None:
        self._problems = problems
        for key, label in self.errors.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)
        self.form_error.setText(problems.get("", ""))
        self.form_error.setVisible("" in problems)
        self.clock_preview.setText(preview)
        self.save_button.setEnabled(self._info is not None and not problems)

    @property
    def problems(self) -> dict[str, str]:
        return dict(self._problems)

    # -- saving ------------------------------------------------------------------------------
    def save(self) -> None:
        if self._info is None or self._problems:
            return
        changes = self.changes()
        if not changes:
            self.accept()
            return
        self.save_button.setEnabled(False)
        job_runner().call(lambda: self._services.traps.update(self._trap_id, changes),
                    self._saved, self._save_failed, context=self)

    def _saved(self, info) -> None:
        self._info = info
        self.saved.emit(info)
        self.accept()

    def _save_failed(self, exc: BaseException) -> None:
        problems = getattr(exc, "problems", None)
        self._show_problems({"": " ".join(problems) if problems else str(exc)}, "")
        self.save_button.setEnabled(True)
