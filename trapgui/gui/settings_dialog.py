"""Settings: models (from the catalogue), device, batch sizes, thresholds, night cut-off hour,
user data folder and database location. Validated with ``Settings.validate`` plus checks of
the paths; saved atomically to the platform's settings file."""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from trapgui.config import Settings
from trapgui.gui.job_runner import job_runner

NONE = "__none__"
ROLES = (("detector", "detector", "Detector", "Finds insects on the image"),
         ("binary_classifier", "binary", "Moth filter", "Tells moths from other insects; "
          "species models then run on moths only"),
         ("species_classifier", "species", "Species classifier", "Names moth species; choose "
          "the one for your region"),
         ("order_classifier", "order", "Order classifier", "Names the insect order of every "
          "detection"))


class SettingsDialog(QDialog):
    applied = Signal()

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self._services = services
        s = services.settings
        self.combos: dict[str, QComboBox] = {}

        models = QGroupBox("Models", self)
        form = QFormLayout(models)
        for attr, role, label, tip in ROLES:
            combo = QComboBox(self)
            combo.setToolTip(tip)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumContentsLength(34)
            if role != "detector":
                combo.addItem("None", NONE)
            value = getattr(s, attr)
            if value:
                combo.addItem(value, value)
                combo.setCurrentIndex(combo.count() - 1)
            self.combos[attr] = combo
            form.addRow(label, combo)
        self.models_note = QLabel("Loading the model catalogue…", self)
        self.models_note.setWordWrap(True)
        form.addRow(self.models_note)

        processing = QGroupBox("Processing", self)
        form = QFormLayout(processing)
        self.device = QComboBox(self)
        self.device.setToolTip("Where models run. Automatic uses every usable GPU, else the CPU")
        self.device.addItem("Automatic (every GPU, else CPU)", "auto")
        self.device.addItem("CPU", "cpu")
        if s.device not in ("auto", "cpu"):
            self.device.addItem(s.device, s.device)
        self.device.setCurrentIndex(self.device.findData(s.device))
        form.addRow("Device", self.device)
        self.det_batch = self._spin(1, 256, s.detection_batch_size,
                                    "Images per detector batch (lower it if a GPU runs out of "
                                    "memory; trapgui also halves it itself)")
        self.cls_batch = self._spin(1, 4096, s.classification_batch_size,
                                    "Crops per classifier batch")
        self.loaders = self._spin(1, 64, s.loader_threads, "Threads decoding images ahead of "
                                  "the device")
        self.top_k = self._spin(1, 50, s.top_k, "How many candidate labels are stored per "
                                "detection")
        form.addRow("Detection batch size", self.det_batch)
        form.addRow("Classification batch size", self.cls_batch)
        form.addRow("Image loader threads", self.loaders)
        form.addRow("Labels kept per detection", self.top_k)

        results = QGroupBox("Results", self)
        form = QFormLayout(results)
        self.det_threshold = self._dspin(s.detection_threshold, "Detections scoring below this "
                                         "are hidden in views and exports (all are stored)")
        self.cls_threshold = self._dspin(s.classification_threshold, "Labels scoring below "
                                         "this count as uncertain")
        self.cutoff = self._spin(0, 23, s.night_cutoff_hour, "A night runs from this hour to "
                                 "the same hour next day (camera time). Existing traps are "
                                 "regrouped when they are scanned again")
        self.cutoff.setSuffix(":00")
        form.addRow("Detection threshold", self.det_threshold)
        form.addRow("Classification threshold", self.cls_threshold)
        form.addRow("Night starts at", self.cutoff)
        self.reviewer = QLineEdit(s.reviewer_name, self)
        self.reviewer.setObjectName("reviewerName")
        self.reviewer.setPlaceholderText("your name, e.g. A. Smith")
        self.reviewer.setToolTip("Recorded with every label you give in Review "
                                 "(identifiedBy in exports); empty: your login name")
        form.addRow("Reviewer name", self.reviewer)

        folders = QGroupBox("Folders (take effect at the next start)", self)
        form = QFormLayout(folders)
        self.data_dir = self._path_row(form, "User data folder", s.data_dir,
                                       str(services.paths.data_dir), folder=True,
                                       tip="Database and models are kept here")
        self.db_path = self._path_row(form, "Database file", s.db_path,
                                      str(services.paths.db_path), folder=False,
                                      tip="The catalogue of traps, images and results")

        self.problems = QLabel("", self)
        self.problems.setObjectName("settingsProblems")
        self.problems.setWordWrap(True)
        self.problems.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.defaults_button = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.defaults_button.setToolTip("Put every field back to trapgui's defaults")
        self.defaults_button.clicked.connect(lambda: self._show(Settings()))
        buttons.button(QDialogButtonBox.StandardButton.Ok).setToolTip("Check and save")
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)

        columns = QHBoxLayout()
        columns.addWidget(processing, 1)
        columns.addWidget(results, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(models)
        layout.addLayout(columns)
        layout.addWidget(folders)
        layout.addWidget(self.problems)
        layout.addWidget(buttons)
        # lambdas: touching services.models on this thread would import torch here
        job_runner().call(lambda: services.models.choices(), self._fill_models,
                          lambda exc: self.models_note.setText(
                              f"The model catalogue could not be read: {exc}"), context=self)
        job_runner().call(services.device_names, self._fill_devices, lambda exc: None,
                          context=self)

    # ---- widgets ------------------------------------------------------------------------
    def _spin(self, lo, hi, value, tip) -> QSpinBox:
        spin = QSpinBox(self)
        spin.setRange(lo, hi)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _dspin(self, value, tip) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(0.0, 1.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _path_row(self, form, label, value, placeholder, folder, tip) -> QLineEdit:
        edit = QLineEdit(value or "", self)
        edit.setPlaceholderText(f"default: {placeholder}")
        edit.setToolTip(tip + " (leave empty for the default)")
        browse = QPushButton("Browse…", self)
        browse.setToolTip(f"Choose the {label.lower()}")

        def choose():
            start = edit.text() or placeholder
            if folder:
                path = QFileDialog.getExistingDirectory(self, label, start)
            else:
                path, _ = QFileDialog.getSaveFileName(
                    self, label, start, "trapgui database (*.sqlite3);;All files (*)",
                    options=QFileDialog.Option.DontConfirmOverwrite)
            if path:
                edit.setText(path)

        browse.clicked.connect(choose)
        row = QWidget(self)
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(edit, 1)
        lay.addWidget(browse)
        form.addRow(label, row)
        return edit

    def _fill_models(self, choices: dict) -> None:
        for attr, role, _label, _tip in ROLES:
            combo = self.combos[attr]
            current = combo.currentData()
            combo.clear()
            if role != "detector":
                combo.addItem("None", NONE)
            for key, name, installed in choices.get(role, []):
                combo.addItem(name if installed else f"{name} — not installed", key)
                combo.setItemData(combo.count() - 1, f"key: {key}", 3)  # ToolTipRole
            index = combo.findData(current)
            if index < 0 and current not in (None, NONE):
                combo.addItem(f"{current} — unknown model", current)
                index = combo.count() - 1
            combo.setCurrentIndex(max(0, index))
        self.models_note.setText("Models marked “not installed” can be chosen; get them in "
                                 "Tools ▸ Models before processing.")

    def _fill_devices(self, names: list) -> None:
        for name in names:
            device = name.split(" ", 1)[0]
            if device in ("cpu",) or self.device.findData(device) >= 0:
                continue
            self.device.addItem(name, device)

    def _show(self, s: Settings) -> None:
        for attr, _role, _label, _tip in ROLES:
            combo = self.combos[attr]
            index = combo.findData(getattr(s, attr) or NONE)
            if index >= 0:
                combo.setCurrentIndex(index)
        self.device.setCurrentIndex(max(0, self.device.findData(s.device)))
        self.det_batch.setValue(s.detection_batch_size)
        self.cls_batch.setValue(s.classification_batch_size)
        self.loaders.setValue(s.loader_threads)
        self.top_k.setValue(s.top_k)
        self.det_threshold.setValue(s.detection_threshold)
        self.cls_threshold.setValue(s.classification_threshold)
        self.cutoff.setValue(s.night_cutoff_hour)
        self.reviewer.setText(s.reviewer_name)
        self.data_dir.setText(s.data_dir or "")
        self.db_path.setText(s.db_path or "")

    # ---- result -------------------------------------------------------------------------
    def edited_settings(self) -> Settings:
        new = copy.deepcopy(self._services.settings)
        for attr, _role, _label, _tip in ROLES:
            value = self.combos[attr].currentData()
            setattr(new, attr, None if value in (None, NONE) else value)
        new.device = self.device.currentData()
        new.detection_batch_size = self.det_batch.value()
        new.classification_batch_size = self.cls_batch.value()
        new.loader_threads = self.loaders.value()
        new.top_k = self.top_k.value()
        new.detection_threshold = round(self.det_threshold.value(), 4)
        new.classification_threshold = round(self.cls_threshold.value(), 4)
        new.night_cutoff_hour = self.cutoff.value()
        new.reviewer_name = " ".join(self.reviewer.text().split())
        new.data_dir = self.data_dir.text().strip() or None
        new.db_path = self.db_path.text().strip() or None
        return new

    def problems_of(self, new: Settings) -> list[str]:
        problems = new.validate()
        if not new.detector:
            problems.append("Choose a detector.")
        if new.data_dir and Path(new.data_dir).expanduser().is_file():
            problems.append(f"The user data folder {new.data_dir} is a file, not a folder.")
        if new.db_path:
            db = Path(new.db_path).expanduser()
            if db.is_dir():
                problems.append(f"The database location {new.db_path} is a folder; choose a "
                                "file name inside it (for example trapgui.sqlite3).")
            elif not db.parent.exists() and not db.parent.parent.exists():
                problems.append(f"The folder for the database ({db.parent}) does not exist.")
        return problems

    def accept(self) -> None:
        new = self.edited_settings()
        problems = self.problems_of(new)
        if problems:
            self.problems.setText("Please correct:\n• " + "\n• ".join(problems))
            self.problems.show()
            return
        try:
            self._services.apply_settings(new)
        except OSError as exc:
            self.problems.setText(f"The settings could not be saved: {exc.strerror or exc}.")
            self.problems.show()
            return
        self.applied.emit()
        super().accept()
