"""Settings: models (from the catalogue), device, batch sizes (measured per device and model,
or fixed), the detector's storage and classification floors, thresholds, night cut-off hour,
user data folder, database location and processing on a cluster (``gui.cluster_settings``).
Validated with ``Settings.validate`` plus checks of the paths; saved atomically to the
platform's settings file."""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from trapgui.config import Settings
from trapgui.gui.cluster_settings import ClusterSettingsGroup
from trapgui.gui.job_runner import job_runner

NONE = "__none__"
DEFAULT_FLOOR = -0.01  # a floor spin box at this value means "the detector's default"
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
        self.auto_batch = QCheckBox("Measure the best batch sizes", self)
        self.auto_batch.setToolTip("On first use of a model on a device, time it at a few batch "
                                   "sizes (a few seconds) and keep the fastest for later runs, "
                                   "among the sizes whose batches fit the device's memory cap")
        self.auto_batch.setChecked(s.auto_batch_sizes)
        self.det_batch = self._spin(1, 256, s.detection_batch_size,
                                    "Images per detector batch (lower it if a GPU runs out of "
                                    "memory; trapgui also halves it itself)")
        self.cls_batch = self._spin(1, 4096, s.classification_batch_size,
                                    "Crops per classifier batch")
        self.tuned = QLabel("", self)
        self.tuned.setObjectName("tunedBatchSizes")
        self.tuned.setStyleSheet("color: palette(dark);")
        small = self.tuned.font()  # a font, not a style sheet size: the label's size follows it
        small.setPixelSize(11)
        self.tuned.setFont(small)
        self.auto_batch.toggled.connect(self._batch_mode)
        self.storage_floor = self._floor_spin(s.storage_floor, "Boxes the detector scores below "
                                              "this are not stored at all (default: the "
                                              "detector's own floor)")
        self.classification_floor = self._floor_spin(
            s.classification_floor, "Stored boxes scoring below this are not classified when "
            "processed; lower the detection threshold below it and they are classified on "
            "demand, in the background (default: the detector's own floor)")
        self._floor_defaults: dict = {}
        self.combos["detector"].currentIndexChanged.connect(self._show_floor_defaults)
        self.loaders = self._spin(1, 64, s.loader_threads, "Threads decoding images ahead of "
                                  "the device")
        self.top_k = self._spin(1, 50, s.top_k, "How many candidate labels are stored per "
                                "detection")
        form.addRow(self.auto_batch)
        form.addRow("Detection batch size", self.det_batch)
        form.addRow("Classification batch size", self.cls_batch)
        form.addRow(self.tuned)
        form.addRow("Image loader threads", self.loaders)
        form.addRow("Labels kept per detection", self.top_k)

        results = QGroupBox("Results", self)
        form = QFormLayout(results)
        self.det_threshold = self._dspin(s.detection_threshold, "Detections scoring below this "
                                         "are hidden in views and exports (all are stored)")
        self.cls_threshold = self._dspin(s.classification_threshold, "Labels scoring below "
                                         "this count as uncertain")
        self.cutoff = self._spin(0, 23, s.night_cutoff_hour, "A night runs from this hour to "
                                 "the same hour next day (camera time). Changing it regroups "
                                 "every trap's images into nights in the background, keeping "
                                 "all results and review decisions")
        self.cutoff.setObjectName("nightCutoff")
        self.cutoff.setSuffix(":00")
        # what OK will do with a changed hour, said before it is done
        self.cutoff_note = QLabel("", self)
        self.cutoff_note.setObjectName("cutoffNote")
        self.cutoff_note.setWordWrap(True)
        self.cutoff.valueChanged.connect(self._cutoff_changed)
        self._cutoff_changed(s.night_cutoff_hour)
        form.addRow("Detection threshold", self.det_threshold)
        form.addRow("Classification threshold", self.cls_threshold)
        form.addRow("Store boxes from score", self.storage_floor)
        form.addRow("Classify boxes from score", self.classification_floor)
        form.addRow("Night starts at", self.cutoff)
        self.site_subfolders = QComboBox(self)
        self.site_subfolders.setObjectName("siteSubfolders")
        for text, value in (("Ask each time", "ask"), ("One trap per subfolder", "subfolders"),
                            ("One trap for everything", "one")):
            self.site_subfolders.addItem(text, value)
        self.site_subfolders.setToolTip(
            "A folder whose subfolders each hold dated images of their own (vermont/, panama/…) "
            "is several trap sites: make one trap per subfolder, one trap of everything, or ask "
            "when such a folder is opened. A folder catalogued as one trap is split only after "
            "asking")
        self.site_subfolders.setCurrentIndex(
            max(0, self.site_subfolders.findData(s.site_subfolders)))
        form.addRow("Site subfolders", self.site_subfolders)
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

        self.cluster = ClusterSettingsGroup(services, s, self)

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
        layout.addWidget(self.cutoff_note)  # the full width: what "Night starts at" does
        layout.addWidget(folders)
        layout.addWidget(self.cluster)
        layout.addWidget(self.problems)
        layout.addWidget(buttons)
        # lambdas: touching services.models on this thread would import torch here
        job_runner().call(lambda: services.models.choices(), self._fill_models,
                          lambda exc: self.models_note.setText(
                              f"The model catalogue could not be read: {exc}"), context=self)
        job_runner().call(services.device_names, self._fill_devices, lambda exc: None,
                          context=self)
        job_runner().call(services.processing.floor_defaults, self._fill_floor_defaults,
                          lambda exc: None, context=self)
        job_runner().call(services.processing.tuned_batch_sizes, self._fill_tuned,
                          lambda exc: self.tuned.setText(""), context=self)
        self._batch_mode(self.auto_batch.isChecked())

    # ---- widgets ------------------------------------------------------------------------
    def _cutoff_changed(self, hour: int) -> None:
        before = self._services.settings.night_cutoff_hour
        # the note keeps its place (its lines are laid out with the dialog), its words change
        self.cutoff_note.setText(
            f"OK regroups every trap into nights that start at {hour:02d}:00 (now "
            f"{before:02d}:00) in the background, after a run in progress; results and review "
            "decisions are kept." if hour != before else
            "Changing \u201cNight starts at\u201d regroups every trap's images into the new "
            "nights in the background, keeping all results and review decisions.")

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

    def _floor_spin(self, value, tip) -> QDoubleSpinBox:
        spin = self._dspin(DEFAULT_FLOOR if value is None else value, tip)
        spin.setRange(DEFAULT_FLOOR, 1.0)
        spin.setSpecialValueText("default (0.00)")  # the detector's, once the catalogue is read
        spin.setValue(DEFAULT_FLOOR if value is None else value)
        return spin

    def _batch_mode(self, auto: bool) -> None:
        self.det_batch.setEnabled(not auto)
        self.cls_batch.setEnabled(not auto)
        self.tuned.setVisible(auto)

    def _fill_tuned(self, entries: list) -> None:
        if not entries:
            self.tuned.setText("Not measured on this computer yet: the next run\n"
                               "measures them (a few seconds per model).")
            return
        lines = []
        for device in dict.fromkeys(e.device_label for e in entries):
            lines.append(f"Measured on {device}:")
            lines += [f"   {e.model}: {e.batch_size} {e.unit}"
                      + (f" ({e.memory_text})" if e.memory_text else "")
                      for e in entries if e.device_label == device]
        self.tuned.setText("\n".join(lines))
        self.tuned.setToolTip("Measured on this computer and kept for later runs:\n"
                              + "\n".join(sorted({e.device for e in entries})))

    def event(self, event) -> bool:
        handled = super().event(event)
        # Text that arrives after the dialog was laid out (the measured batch sizes, the
        # models' notes) needs room: show() and adjustSize stop at two thirds of the screen,
        # which clipped it.
        if event.type() == QEvent.Type.LayoutRequest and self.isVisible():
            self.resize(self.size().expandedTo(self.sizeHint()))
        return handled

    def _fill_floor_defaults(self, defaults: dict) -> None:
        self._floor_defaults = dict(defaults)
        self._show_floor_defaults()

    def _show_floor_defaults(self, *_args) -> None:
        floors = self._floor_defaults.get(self.combos["detector"].currentData())
        if floors is None:
            return
        self.storage_floor.setSpecialValueText(f"default ({floors[0]:.2f})")
        self.classification_floor.setSpecialValueText(f"default ({floors[1]:.2f})")

    @staticmethod
    def _floor_value(spin: QDoubleSpinBox):
        value = round(spin.value(), 4)
        return None if value <= DEFAULT_FLOOR + 1e-9 else value

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
        self.auto_batch.setChecked(s.auto_batch_sizes)
        self.det_batch.setValue(s.detection_batch_size)
        self.cls_batch.setValue(s.classification_batch_size)
        self.storage_floor.setValue(DEFAULT_FLOOR if s.storage_floor is None else s.storage_floor)
        self.classification_floor.setValue(DEFAULT_FLOOR if s.classification_floor is None
                                           else s.classification_floor)
        self.loaders.setValue(s.loader_threads)
        self.top_k.setValue(s.top_k)
        self.det_threshold.setValue(s.detection_threshold)
        self.cls_threshold.setValue(s.classification_threshold)
        self.cutoff.setValue(s.night_cutoff_hour)
        self.site_subfolders.setCurrentIndex(
            max(0, self.site_subfolders.findData(s.site_subfolders)))
        self.reviewer.setText(s.reviewer_name)
        self.data_dir.setText(s.data_dir or "")
        self.db_path.setText(s.db_path or "")
        self.cluster.show_settings(s)

    # ---- result -------------------------------------------------------------------------
    def edited_settings(self) -> Settings:
        new = copy.deepcopy(self._services.settings)
        for attr, _role, _label, _tip in ROLES:
            value = self.combos[attr].currentData()
            setattr(new, attr, None if value in (None, NONE) else value)
        new.device = self.device.currentData()
        new.auto_batch_sizes = self.auto_batch.isChecked()
        new.detection_batch_size = self.det_batch.value()
        new.classification_batch_size = self.cls_batch.value()
        new.storage_floor = self._floor_value(self.storage_floor)
        new.classification_floor = self._floor_value(self.classification_floor)
        new.loader_threads = self.loaders.value()
        new.top_k = self.top_k.value()
        new.detection_threshold = round(self.det_threshold.value(), 4)
        new.classification_threshold = round(self.cls_threshold.value(), 4)
        new.night_cutoff_hour = self.cutoff.value()
        new.site_subfolders = self.site_subfolders.currentData()
        new.reviewer_name = " ".join(self.reviewer.text().split())
        new.data_dir = self.data_dir.text().strip() or None
        new.db_path = self.db_path.text().strip() or None
        self.cluster.apply_to(new)
        return new

    def problems_of(self, new: Settings) -> list[str]:
        problems = new.validate() + self.cluster.problems_of(new)
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
