"""Export ▸ Detections CSV (Ctrl+E): the selected nights' detections at the current threshold.

The export is a job (``services.export.detections_job``) on the window's job runner: its Progress
events reach the dialog on the GUI thread. Cancel stops it at the next partition and the
partial file is removed by the writer.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from trapgui.core.errors import Cancelled, TrapguiError
from trapgui.core.jobs import Progress
from trapgui.gui.job_runner import JobHandle, job_runner


class ExportDialog(QDialog):
    progressed = Signal(int, int)  # rows written, rows in total (as shown: the latest)
    finished_export = Signal(str)  # the saved path

    def __init__(self, services, night_ids, threshold, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export detections")
        self._services = services
        self._night_ids = list(night_ids or [])
        det, cls = threshold if isinstance(threshold, (tuple, list)) else (threshold, None)
        self._export: JobHandle | None = None
        self._running = False
        self.saved_path: Path | None = None
        self.open_url = QDesktopServices.openUrl  # how "Open folder" opens it

        n = len(self._night_ids)
        scope = f"{n} selected night{'s' if n != 1 else ''}" if n else "all nights of all traps"
        self.scope_label = QLabel(scope, self)
        self.min_score = QDoubleSpinBox(self)
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setSingleStep(0.05)
        self.min_score.setDecimals(2)
        self.min_score.setValue(det if det is not None else 0.0)
        self.min_score.setToolTip("Detections scoring below this are left out of the file")
        self.label_check = QCheckBox(self)
        self.label_score = QDoubleSpinBox(self)
        self.label_score.setRange(0.0, 1.0)
        self.label_score.setSingleStep(0.05)
        self.label_score.setDecimals(2)
        self.label_score.setValue(cls if cls is not None else 0.5)
        self.label_score.setEnabled(False)
        self.label_check.setText("Only labels scoring at least")
        self.label_check.setToolTip("Leave out detections whose label is below this score "
                                    "(otherwise every detection is written with its label "
                                    "and score)")
        self.label_check.toggled.connect(self.label_score.setEnabled)
        self.label_check.toggled.connect(lambda _c: self._count())
        self.label_score.valueChanged.connect(lambda _v: self._count())
        self.min_score.valueChanged.connect(lambda _v: self._count())
        self.bom_check = QCheckBox("Excel-friendly encoding (UTF-8 with BOM)", self)
        self.bom_check.setToolTip("Makes Excel read accented species names correctly")
        self.count_label = QLabel("Counting…", self)

        self.path_edit = QLineEdit(str(services.export.default_path(_default_folder())), self)
        self.path_edit.setToolTip("The CSV file to write")
        self.path_edit.textChanged.connect(lambda _t: self._update_buttons())
        browse = QPushButton("Browse…", self)
        browse.setToolTip("Choose where to save the CSV file")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        label_row = QHBoxLayout()
        label_row.addWidget(self.label_check)
        label_row.addWidget(self.label_score)
        label_row.addStretch(1)

        score_row = QHBoxLayout()
        score_row.addWidget(self.min_score)
        score_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Nights:", self.scope_label)
        form.addRow("Min. detection score:", score_row)
        form.addRow("Labels:", label_row)
        form.addRow("", self.bom_check)
        form.addRow("Save as:", path_row)
        form.addRow("", self.count_label)

        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        self.result_label = QLabel(self)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_folder_button = QPushButton("Open folder", self)
        self.open_folder_button.setToolTip("Show the exported file's folder")
        self.open_folder_button.setEnabled(False)
        self.open_folder_button.clicked.connect(self._open_folder)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result_label, 1)
        result_row.addWidget(self.open_folder_button)

        self.buttons = QDialogButtonBox(self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.export_button.setToolTip("Write the CSV file")
        self.close_button = self.buttons.addButton(QDialogButtonBox.Close)
        self.export_button.clicked.connect(self.start_export)
        self.close_button.clicked.connect(self._close_or_cancel)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addLayout(result_row)
        layout.addWidget(self.buttons)
        self.resize(560, self.sizeHint().height())

        if self._night_ids:
            night_ids, services = list(self._night_ids), services
            job_runner().call(lambda: services.results.nights(night_ids),
                              self._describe_nights, lambda exc: None, context=self)
        self._count_generation = 0
        self._count()
        self._update_buttons()

    def _describe_nights(self, nights) -> None:
        if not nights:
            return
        dates = [f"{n.date:%a %d %b %Y}" for n in nights]
        text = ", ".join(dates[:3]) + (f" and {len(dates) - 3} more" if len(dates) > 3 else "")
        n = len(self._night_ids)
        self.scope_label.setText(f"{n} selected night{'s' if n != 1 else ''}: {text}")
        self.scope_label.setToolTip("\n".join(dates))

    # -- options ----------------------------------------------------------------------------

    def _label_min(self) -> float | None:
        return self.label_score.value() if self.label_check.isChecked() else None

    def _count(self) -> None:
        self._count_generation += 1
        gen = self._count_generation
        nights, det, cls = self._night_ids, self.min_score.value(), self._label_min()
        self.count_label.setText("Counting…")

        def done(n: int) -> None:
            if gen == self._count_generation:
                self.count_label.setText(f"{n:,} detection{'s' if n != 1 else ''} will be written.")

        services = self._services
        job_runner().call(lambda: services.export.count(nights, det, cls), done,
                          lambda exc: self.count_label.setText(f"Could not count: {exc}"),
                          context=self)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export detections", self.path_edit.text(),
                                              "CSV files (*.csv);;All files (*)")
        if path:
            if not path.lower().endswith(".csv") and "." not in Path(path).name:
                path += ".csv"
            self.path_edit.setText(path)

    # -- running ----------------------------------------------------------------------------

    @Slot()
    def start_export(self) -> None:
        if self._running:
            return
        path = self.path_edit.text().strip()
        if not path:
            self.result_label.setText("Choose a file name first.")
            return
        self._running = True
        self.saved_path = None
        self.open_folder_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first partition reports a total
        self.progress.setVisible(True)
        self.result_label.setText("Exporting…")
        self._update_buttons()
        nights, det, cls = self._night_ids, self.min_score.value(), self._label_min()
        bom = self.bom_check.isChecked()
        services = self._services
        self._export = job_runner().start(
            lambda emit, control: services.export.detections_job(
                path, nights, det, cls, excel_bom=bom)(emit, control),
            name="exporting detections", on_event=self._on_progress, on_done=self._done,
            on_error=self._failed, context=self)

    def _on_progress(self, event) -> None:
        if not isinstance(event, Progress):
            return
        done, total = event.done, event.total or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done:,} / {total:,} rows")
        self.progressed.emit(done, total)

    def _done(self, report) -> None:
        self._running = False
        self.saved_path = Path(report.path)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat(f"{report.rows:,} rows")
        self.result_label.setText(f"Saved {report.rows:,} detections to {self.saved_path}")
        self.open_folder_button.setEnabled(True)
        self._update_buttons()
        self.finished_export.emit(str(self.saved_path))

    def _failed(self, exc: BaseException) -> None:
        self._running = False
        self.progress.setVisible(False)
        if isinstance(exc, Cancelled):
            self.result_label.setText("Export cancelled; no file was written.")
        elif isinstance(exc, TrapguiError):
            self.result_label.setText(str(exc))
        else:
            self.result_label.setText(f"The export failed: {exc}")
        self._update_buttons()

    def cancel_export(self) -> None:
        if self._export is not None:
            self._export.cancel()
        self.result_label.setText("Cancelling…")

    def _close_or_cancel(self) -> None:
        if self._running:
            self.cancel_export()
        else:
            self.reject()

    def reject(self) -> None:  # Esc and the window's close button
        if self._running:
            self.cancel_export()  # closes once the export has stopped
            return
        super().reject()

    def is_running(self) -> bool:
        return self._running

    def _update_buttons(self) -> None:
        self.export_button.setEnabled(not self._running and bool(self.path_edit.text().strip()))
        self.close_button.setText("Cancel export" if self._running else "Close")
        self.close_button.setToolTip("Stop the export (no file is left behind)" if self._running
                                     else "Close this dialog")

    def _open_folder(self) -> None:
        if self.saved_path is not None:
            self.open_url(QUrl.fromLocalFile(str(self.saved_path.parent)))


def _default_folder() -> Path:
    docs = Path.home() / "Documents"
    return docs if docs.is_dir() else Path.home()
