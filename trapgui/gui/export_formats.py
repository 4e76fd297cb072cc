"""The Export dialog's format chooser: a list of the formats (``core.export_formats``) with what
each one is, and the options of the chosen one (title, contributors, licences, absences,
crop margin...). Pure widgets: no query, nothing slow; the dialog turns ``format_key()`` and
``options()`` into ``services.export.request(...)``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from trapgui.core.export_formats import FORMATS, ExportFormat, format_by_key

SAMPLING_DESIGNS = ("targeted", "opportunistic", "systematicRandom", "simpleRandom",
                    "clusteredRandom", "experimental")
OPTION_LABELS = {
    "excel_bom": "", "title": "Title:", "contributors": "Contributors:",
    "data_license": "Data licence:", "media_license": "Photo licence:",
    "media_url": "Photos published at:", "sampling_design": "Sampling design:",
    "license": "Licence:", "absences": "Absences:", "margin": "Crop margin:",
}


class ExportFormatChooser(QWidget):
    formatChanged = Signal(str)  # the chosen format's key

    def __init__(self, parent=None, initial: str = "detections"):
        super().__init__(parent)
        self.setObjectName("exportFormatChooser")
        self.list = QListWidget(self)
        self.list.setObjectName("exportFormatList")
        for fmt in FORMATS:
            item = QListWidgetItem(fmt.title, self.list)
            item.setData(Qt.UserRole, fmt.key)
            item.setToolTip(fmt.description)
        self.list.setFixedWidth(250)
        self.list.setSpacing(2)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.thresholds_note = QLabel(self)
        self.thresholds_note.setWordWrap(True)
        self.thresholds_note.setStyleSheet("font-style: italic;")

        self.editors: dict[str, QWidget] = {}
        self.option_rows: dict[str, tuple[QLabel, QWidget]] = {}
        self.options_form = QFormLayout()
        self._add_options()

        right = QVBoxLayout()
        right.addWidget(self.description)
        right.addWidget(self.thresholds_note)
        right.addLayout(self.options_form)
        right.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(right, 1)
        self.list.currentRowChanged.connect(self._row_changed)
        self.set_format(initial)

    # -- options -----------------------------------------------------------------------------
    def _add_options(self) -> None:
        bom = QCheckBox("Excel-friendly encoding (UTF-8 with BOM)", self)
        bom.setToolTip("Makes Excel read accented species names correctly")
        title = QLineEdit(self)
        title.setPlaceholderText("e.g. Moths of Lake Shore Farm, 2022")
        title.setToolTip("The dataset's title (default: made from the traps' names)")
        contributors = QPlainTextEdit(self)
        contributors.setFixedHeight(52)
        contributors.setTabChangesFocus(True)
        contributors.setPlaceholderText("One per line: Name <email>  (the first is the contact)")
        contributors.setToolTip("People or organisations responsible for the data, one per "
                                "line: Name <email>, optionally followed by a role "
                                "(principalInvestigator, rightsHolder, publisher, contributor)")
        data_license = QComboBox(self)
        media_license = QComboBox(self)
        for combo, tip in ((data_license, "Licence of the data tables"),
                           (media_license, "Licence of the photographs")):
            combo.setEditable(True)
            combo.addItems(["", "CC0-1.0", "CC-BY-4.0", "CC-BY-NC-4.0"])
            combo.setToolTip(tip + " (Camtrap DP needs both, or neither)")
        media_url = QLineEdit(self)
        media_url.setPlaceholderText("https://… (empty: file paths on this computer)")
        media_url.setToolTip("Where the photos are published: each file is then "
                             "URL/trap folder/image path, and marked public")
        design = QComboBox(self)
        design.addItems(SAMPLING_DESIGNS)
        design.setToolTip("The project's sampling design; a light attracts insects, so "
                          "'targeted' is the usual choice")
        license_ = QComboBox(self)
        license_.setEditable(True)
        license_.addItems(["", "CC0-1.0", "CC-BY-4.0", "CC-BY-NC-4.0"])
        license_.setToolTip("Licence of the data (GBIF accepts these three)")
        absences = QComboBox(self)
        absences.addItem("Zeros for the export's taxa on fully processed nights", "observed")
        absences.addItem("Presences only", "none")
        absences.setToolTip("Absent records (count 0) for taxa recorded on other nights of "
                            "this export: the zeros of the species × night matrix")
        margin = QDoubleSpinBox(self)
        margin.setRange(0.0, 2.0)
        margin.setSingleStep(0.05)
        margin.setDecimals(2)
        margin.setValue(0.1)
        margin.setSuffix(" × box")
        margin.setToolTip("Extra border around each box, as a fraction of the box size")
        margin.setMaximumWidth(140)
        for key, editor in (("excel_bom", bom), ("title", title), ("contributors", contributors),
                            ("data_license", data_license), ("media_license", media_license),
                            ("media_url", media_url), ("sampling_design", design),
                            ("license", license_), ("absences", absences), ("margin", margin)):
            editor.setObjectName(f"option_{key}")
            label = QLabel(OPTION_LABELS[key], self)
            self.options_form.addRow(label, editor)
            self.editors[key] = editor
            self.option_rows[key] = (label, editor)

    # -- state -------------------------------------------------------------------------------
    def set_format(self, key: str) -> None:
        keys = [f.key for f in FORMATS]
        self.list.setCurrentRow(keys.index(key))

    def format(self) -> ExportFormat:
        item = self.list.currentItem()
        return format_by_key(item.data(Qt.UserRole) if item else FORMATS[0].key)

    def format_key(self) -> str:
        return self.format().key

    def _row_changed(self, _row: int) -> None:
        fmt = self.format()
        self.description.setText(f"<b>{fmt.title}</b><br>{fmt.description}")
        if fmt.key == "crops":
            note = ("Individuals that count at the detection threshold; a crop's folder is its "
                    "taxon at the classification threshold.")
        elif fmt.counts_individuals:
            note = ("Counts individuals (never detections) at the detection and classification "
                    "thresholds.")
        else:
            note = "Writes every row; the thresholds leave rows out only when set."
        self.thresholds_note.setText(note)
        for key, (label, editor) in self.option_rows.items():
            label.setVisible(key in fmt.options)
            editor.setVisible(key in fmt.options)
        self.formatChanged.emit(fmt.key)

    def options(self) -> dict:
        """The chosen format's options, as ``services.export.request(options=...)`` takes."""
        fmt = self.format()
        out: dict = {}
        for key in fmt.options:
            editor = self.editors[key]
            if key == "excel_bom":
                out[key] = editor.isChecked()
            elif key == "contributors":
                lines = [ln.strip() for ln in editor.toPlainText().splitlines() if ln.strip()]
                if lines:
                    out[key] = lines
            elif key == "absences":
                out[key] = editor.currentData()
            elif key == "margin":
                out[key] = editor.value()
            elif isinstance(editor, QComboBox):
                if editor.currentText().strip():
                    out[key] = editor.currentText().strip()
            elif editor.text().strip():
                out[key] = editor.text().strip()
        return out

    def suggested_name(self, stamp: str) -> str:
        """A file or folder name for the chosen format, e.g. ``darwin-core-20240601-2130.zip``."""
        fmt = self.format()
        return f"{fmt.default_name}-{stamp}{fmt.suffix}"
