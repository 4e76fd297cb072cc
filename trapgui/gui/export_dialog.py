"""File ▸ Export (Ctrl+E): the selected nights (all nights of all traps when none) in any format
of ``core.export_formats``, chosen with ``gui.export_formats.ExportFormatChooser``.

Before a start the dialog asks ``services.export.check(request)`` (off the GUI thread) and
shows its problems (they disable Export) and warnings; the export itself is
``services.export.export_job(request)`` on the window's job runner, whose Progress events drive
the bar. The result is one sentence (what was written, where) or the failure's sentence.
Cancel stops it and nothing is left under the chosen name.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QVBoxLayout)

from trapgui.core.errors import Cancelled, TrapguiError
from trapgui.core.jobs import Progress
from trapgui.gui.export_formats import ExportFormatChooser
from trapgui.gui.job_runner import JobHandle, job_runner


ERROR_STYLE = "color: #c62828;"  # as the trap properties dialog's


def _score_box(parent, value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox(parent)
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class ExportDialog(QDialog):
    progressed = Signal(int, int)  # done, total (as shown: the latest)
    finished_export = Signal(str)  # the saved file or folder
    checked = Signal()  # the current request was checked (problems shown)

    def __init__(self, services, night_ids, threshold, parent=None, initial: str = "detections"):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._services = services
        self._night_ids = list(night_ids or [])
        det, cls = threshold if isinstance(threshold, (tuple, list)) else (threshold, None)
        self._export: JobHandle | None = None
        self._running = False
        self._problems: tuple[str, ...] = ()
        self._path_typed = False
        self.saved_path: Path | None = None
        self.open_url = QDesktopServices.openUrl  # how "Open folder" opens it

        self.chooser = ExportFormatChooser(self, initial)
        n = len(self._night_ids)
        self.scope_label = QLabel(f"{n} selected night{'s' if n != 1 else ''}" if n
                                  else "All nights of all traps", self)
        self.min_score = _score_box(self, det if det is not None else 0.0, "")
        self.label_check = QCheckBox("Only labels scoring at least", self)
        self.label_check.setToolTip("Leave out rows whose label is below this score (otherwise "
                                    "every row is written with its label and score)")
        self.label_score = _score_box(self, cls if cls is not None else 0.5, "")
        self.label_caption = QLabel("Labels count from", self)
        self.bom_check = self.chooser.editors["excel_bom"]  # the chooser's own option
        self.count_label = QLabel("", self)
        self.count_label.setWordWrap(True)
        self.path_edit = QLineEdit(self)
        self.path_edit.textEdited.connect(self._path_edited)
        self.path_edit.textChanged.connect(lambda _t: self._schedule_check())
        self.browse_button = QPushButton("Browse…", self)
        self.browse_button.clicked.connect(self._browse)

        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        score_row = QHBoxLayout()
        score_row.addWidget(self.min_score)
        score_row.addStretch(1)
        label_row = QHBoxLayout()
        label_row.addWidget(self.label_check)
        label_row.addWidget(self.label_caption)
        label_row.addWidget(self.label_score)
        label_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Nights:", self.scope_label)
        self.score_caption = QLabel("Min. detection score:", self)
        form.addRow(self.score_caption, score_row)
        form.addRow("Labels:", label_row)
        form.addRow("Save as:", path_row)
        form.addRow("", self.count_label)

        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        self.result_label = QLabel(self)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_folder_button = QPushButton("Open folder", self)
        self.open_folder_button.setToolTip("Show the export's folder")
        self.open_folder_button.setEnabled(False)
        self.open_folder_button.clicked.connect(self._open_folder)
        result_row = QHBoxLayout()
        result_row.addWidget(self.result_label, 1)
        result_row.addWidget(self.open_folder_button)
        self.buttons = QDialogButtonBox(self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start_export)
        self.close_button.clicked.connect(self._close_or_cancel)

        layout = QVBoxLayout(self)
        layout.addWidget(self.chooser, 1)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addLayout(result_row)
        layout.addWidget(self.buttons)
        self.resize(820, 600)

        self._check_timer = QTimer(self, singleShot=True, interval=250)
        self._check_timer.timeout.connect(self._check)
        self._check_generation = 0
        self.chooser.formatChanged.connect(lambda _k: self._format_changed())
        self.label_check.toggled.connect(lambda _c: self._sync_label_score())
        for box in (self.min_score, self.label_score):
            box.valueChanged.connect(lambda _v: self._schedule_check())
        if self._night_ids:
            night_ids = list(self._night_ids)
            job_runner().call(lambda: services.results.nights(night_ids),
                              self._describe_nights, lambda exc: None, context=self)
        self._format_changed()

    # -- the request ------------------------------------------------------------------------
    def _format_changed(self) -> None:
        fmt = self.chooser.format()
        rows = not fmt.counts_individuals
        self.score_caption.setText("Min. detection score:" if rows else "Detection threshold:")
        self.min_score.setToolTip(
            "Detections scoring below this are left out of the file" if rows else
            "An individual counts when one of its detections scores at least this")
        self.label_check.setVisible(rows and fmt.key != "megadetector")
        self.label_caption.setVisible(not rows)
        self.label_score.setToolTip("Labels count from this classifier score (below it an "
                                    "individual counts as not identified)" if not rows else
                                    "Rows whose label scores below this are left out")
        self.browse_button.setToolTip(f"Choose where to save the {fmt.title}")
        self.path_edit.setToolTip("The folder to write (it must be new or empty)"
                                  if fmt.target == "folder" else "The file to write")
        self.export_button.setToolTip(f"Write the {fmt.title}")
        if not self._path_typed:
            self.path_edit.setText(str(self._services.export.default_target(
                fmt.key, self._folder())))
        self._sync_label_score()

    def _sync_label_score(self) -> None:
        fmt = self.chooser.format()
        self.label_score.setVisible(fmt.key != "megadetector")
        self.label_score.setEnabled(fmt.counts_individuals or self.label_check.isChecked())
        self._schedule_check()

    def _folder(self) -> Path:
        current = self.path_edit.text().strip()
        if current:
            return Path(current).expanduser().parent
        docs = Path.home() / "Documents"
        return docs if docs.is_dir() else Path.home()

    def _path_edited(self, _text: str) -> None:
        self._path_typed = True

    def request(self):
        """The ``ExportRequest`` the dialog would run now (no query)."""
        fmt = self.chooser.format()
        label = (self.label_score.value() if fmt.counts_individuals or self.label_check.isChecked()
                 else None)
        return self._services.export.request(
            fmt.key, Path(self.path_edit.text().strip()).expanduser(), self._night_ids or None,
            min_score=self.min_score.value(), min_label_score=label,
            options=self.chooser.options())

    def _describe_nights(self, nights) -> None:
        if not nights:
            return
        dates = [f"{n.date:%a %d %b %Y}" for n in nights]
        text = ", ".join(dates[:3]) + (f" and {len(dates) - 3} more" if len(dates) > 3 else "")
        n = len(self._night_ids)
        self.scope_label.setText(f"{n} selected night{'s' if n != 1 else ''}: {text}")
        self.scope_label.setToolTip("\n".join(dates))

    # -- checking before a start ------------------------------------------------------------
    def _schedule_check(self) -> None:
        self._check_generation += 1
        self.count_label.setText("Checking…")
        self._check_timer.start()

    def _check(self) -> None:
        gen = self._check_generation
        if not self.path_edit.text().strip():
            self._show_check(gen, (("Choose where to save the export first.",), (), None))
            return
        try:
            request = self.request()
        except TrapguiError as exc:
            self._show_check(gen, ((str(exc),), (), None))
            return
        services, fmt = self._services, self.chooser.format()

        def query():
            check = services.export.check(request)
            rows = None
            if fmt.key == "detections" and check.ok:
                rows = services.export.count(request.scope.night_ids, request.min_detection_score,
                                             request.min_label_score)
            return check.problems, check.warnings, rows

        job_runner().call(query, lambda r: self._show_check(gen, r),
                          lambda exc: self._show_check(gen, ((f"Could not check: {exc}",), (),
                                                             None)), context=self)

    def _show_check(self, gen: int, result) -> None:
        if gen != self._check_generation:
            return
        problems, warnings, rows = result
        self._problems = tuple(problems)
        lines = list(problems) + list(warnings)
        if any("coordinates" in line or "clock" in line for line in lines):
            lines.append("Set a trap's coordinates and camera clock in its Properties… "
                         "(right-click the trap in the tree).")
        if not lines and rows is not None:
            lines = [f"{rows:,} detection{'s' if rows != 1 else ''} will be written."]
        elif not lines:
            lines = ["Ready to export."]
        self.count_label.setText("\n".join(lines))
        self.count_label.setStyleSheet(ERROR_STYLE if problems else "")
        self._update_buttons()
        self.checked.emit()

    def problems(self) -> tuple[str, ...]:
        return self._problems

    def _browse(self) -> None:
        fmt = self.chooser.format()
        if fmt.target == "folder":
            path = QFileDialog.getExistingDirectory(self, f"Export {fmt.title}", str(self._folder()))
            if path:
                path = str(Path(path) / Path(self.path_edit.text()).name)
        else:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {fmt.title}",
                                                  self.path_edit.text(),
                                                  f"*{fmt.suffix};;All files (*)")
            if path and not path.lower().endswith(fmt.suffix):
                path += fmt.suffix
        if path:
            self._path_typed = True
            self.path_edit.setText(path)

    # -- running ----------------------------------------------------------------------------
    @Slot()
    def start_export(self) -> None:
        if self._running:
            return
        if not self.path_edit.text().strip():
            self.result_label.setText("Choose where to save the export first.")
            return
        try:
            request = self.request()
        except TrapguiError as exc:
            self.result_label.setText(str(exc))
            return
        self._running = True
        self.saved_path = None
        self.open_folder_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first report of a total
        self.progress.setVisible(True)
        self.result_label.setText("Exporting…")
        self._update_buttons()
        self._export = job_runner().start(
            self._services.export.export_job(request), name=f"exporting {request.format}",
            on_event=self._on_progress, on_done=self._done, on_error=self._failed, context=self)

    def _on_progress(self, event) -> None:
        if not isinstance(event, Progress):
            return
        done, total = event.done, event.total or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        unit = f" {event.unit}" if event.unit else ""
        self.progress.setFormat(f"{event.message + ': ' if event.message else ''}"
                                f"{done:,} / {total:,}{unit}" if total else f"{done:,}{unit}")
        self.progressed.emit(done, total)

    def _done(self, result) -> None:
        self._running = False
        self.saved_path = Path(result.path)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("Done")
        text = result.summary() + "."
        if result.notes:
            text += " " + " ".join(result.notes)
        self.result_label.setText(text)
        self.open_folder_button.setEnabled(True)
        self._update_buttons()
        self.finished_export.emit(str(self.saved_path))

    def _failed(self, exc: BaseException) -> None:
        self._running = False
        self.progress.setVisible(False)
        if isinstance(exc, Cancelled):
            self.result_label.setText("Export cancelled; nothing was written.")
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
        self.export_button.setEnabled(not self._running and not self._problems
                                      and bool(self.path_edit.text().strip()))
        self.close_button.setText("Cancel export" if self._running else "Close")
        self.close_button.setToolTip("Stop the export (nothing is left behind)" if self._running
                                     else "Close this dialog")

    def _open_folder(self) -> None:
        if self.saved_path is not None:
            folder = self.saved_path if self.saved_path.is_dir() else self.saved_path.parent
            self.open_url(QUrl.fromLocalFile(str(folder)))
