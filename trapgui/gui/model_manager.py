"""Model manager: the catalogue with install state and size; download (progress, cancel,
resumable), import from file (offline computers), verify, remove. Every store call runs in the
background; failures are sentences in the dialog, never tracebacks."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QFileDialog,
                               QHBoxLayout, QHeaderView, QLabel, QMessageBox, QProgressBar,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from trapgui.core.errors import Cancelled
from trapgui.core.jobs import Progress
from trapgui.gui.error_dialog import user_message
from trapgui.gui.job_runner import JobHandle, job_runner

COLUMNS = ("Model", "Kind", "Status", "Size", "Antenna pipelines")
KEY_ROLE = Qt.ItemDataRole.UserRole


def format_size(n: int | None) -> str:
    if n is None:
        return "unknown"
    if not n:
        return "–"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def one_sentence(exc: BaseException) -> str:
    """The failure's sentence for this dialog: the CLI's hint lines (``--labels FILE``) do not
    apply here, the dialog's own buttons do."""
    text = user_message(exc).strip()
    first = text.splitlines()[0] if text else "The action failed."
    if "--labels" in text or "trapgui models" in first:
        return first
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class ModelManager(QDialog):
    def __init__(self, services, parent=None, highlight: str | None = None):
        super().__init__(parent)
        self.setObjectName("modelManager")
        self.setWindowTitle("Models")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._services = services
        self._highlight = highlight
        self._entries: dict[str, object] = {}
        self._busy_key: str | None = None
        self._download_job: JobHandle | None = None
        # what the last action came to: stays in the message line until the next action
        # (the catalogue reload after it must not replace it)
        self._outcome: str | None = None
        self._outcome_failed = False

        self.intro = QLabel(self)
        self.intro.setWordWrap(True)
        self.intro.setText("Models find insects (detectors) and name them (classifiers). "
                           "Download those you need; on a computer without internet, import "
                           "the weights file and its label map copied from elsewhere.")
        if highlight:
            self.intro.setText(f"<b>A model chosen in Settings is not installed: {highlight}."
                               "</b> Download it below, or import its weights file. "
                               "Or choose another model in Settings.")
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setToolTip("The published models trapgui knows; select one to act on it")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.download_button = self._button("Download", "Download the selected model (resumes "
                                            "an unfinished download)", self._download)
        self.cancel_button = self._button("Cancel download", "Stop the download; it can be "
                                          "resumed later", self._cancel_download)
        self.import_button = self._button("Import from file…", "Install weights (and label map) "
                                          "files you already have", self._import)
        self.verify_button = self._button("Verify", "Check the files' checksums and that they "
                                          "load into the model", self._verify)
        self.remove_button = self._button("Remove", "Delete the selected model's files",
                                          self._remove)
        self.progress = QProgressBar(self)
        self.progress.setToolTip("Download progress")
        self.progress.hide()
        self.message = QLabel("Loading the catalogue…", self)
        self.message.setObjectName("modelMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        for b in (self.download_button, self.cancel_button, self.import_button,
                  self.verify_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(close)
        self.resize(900, 560)
        self._update_buttons()
        self.reload()

    def _button(self, text, tip, slot) -> QPushButton:
        b = QPushButton(text, self)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    # ---- catalogue ----------------------------------------------------------------------
    def reload(self) -> None:
        services = self._services
        job_runner().call(lambda: services.models.entries(), self._fill, self._show_problem,
                          context=self, name="reading the model catalogue")

    def _fill(self, entries: list) -> None:
        current = self.selected_key() or self._highlight
        self._entries = {e.key: e for e in entries}
        wanted = self._entries.get(self._highlight)
        if wanted is not None and not wanted.installed:
            self.intro.setText(f"<b>{wanted.name} is chosen in Settings but is not installed."
                               "</b> Download it below, import its weights file, or choose "
                               "another model in Settings.")
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            status = e.state
            if e.state == "partly downloaded":
                status = f"partly downloaded ({format_size(e.downloaded_bytes)})"
            if not e.needs_weights:
                status = "built in"
            values = (e.name, e.kind, status,
                      "–" if not e.needs_weights else format_size(e.size_bytes),
                      ", ".join(e.antenna_slugs))
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(KEY_ROLE, e.key)
                self.table.setItem(row, col, item)
            self.table.item(row, 0).setToolTip(f"{e.name}\nkey: {e.key}\n{e.weights_url or ''}")
            if e.problem:
                self.table.item(row, 2).setToolTip(e.problem)
            font = self.table.item(row, 2).font()
            font.setBold(e.installed)
            self.table.item(row, 2).setFont(font)
            if e.key == current:
                self.table.selectRow(row)
        if not self._busy_key:
            installed = sum(e.installed for e in entries)
            ready = f"{installed} of {len(entries)} models are ready to use."
            self._show_message(self._outcome if self._outcome_failed
                               else f"{self._outcome} {ready}" if self._outcome else ready,
                               self._outcome_failed)
        self._update_buttons()

    def _show_message(self, text: str, failed: bool = False) -> None:
        self.message.setText(text)
        self.message.setProperty("failed", failed)
        # a failure reads as one (bold; the theme's palette colours stay)
        font = self.message.font()
        font.setBold(failed)
        self.message.setFont(font)

    def selected_key(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(KEY_ROLE) if items else None

    def _update_buttons(self) -> None:
        entry = self._entries.get(self.selected_key())
        busy = self._busy_key is not None
        needs = bool(entry and entry.needs_weights)
        self.download_button.setEnabled(needs and not busy and not entry.installed)
        self.cancel_button.setEnabled(busy and self._download_job is not None
                                      and not self._download_job.control.cancelled)
        self.import_button.setEnabled(needs and not busy)
        self.verify_button.setEnabled(needs and not busy and entry.state != "not installed")
        self.remove_button.setEnabled(needs and not busy and entry.state != "not installed")

    # ---- actions ------------------------------------------------------------------------
    def _start(self, key: str, text: str) -> None:
        self._busy_key = key
        self._outcome, self._outcome_failed = None, False
        self._show_message(text)
        self._update_buttons()

    def _finish(self, text: str, failed: bool = False) -> None:
        self._busy_key = None
        self._download_job = None
        self.progress.hide()
        self._outcome, self._outcome_failed = text, failed
        self._show_message(text, failed)
        self.reload()

    def _fail(self, exc: BaseException) -> None:
        self._finish(one_sentence(exc), failed=not isinstance(exc, Cancelled))

    def _show_problem(self, exc: BaseException) -> None:
        self._show_message(one_sentence(exc), failed=True)

    def _download(self) -> None:
        key = self.selected_key()
        if not key:
            return
        name = self._entries[key].name
        self._start(key, f"Downloading {name}…")
        self.progress.setRange(0, 0)
        self.progress.show()
        services = self._services
        self._download_job = job_runner().start(
            lambda emit, control: services.models.download_job(key)(emit, control),
            name=f"downloading {name}", on_event=self._progress,
            on_done=lambda status: self._finish(f"{name} is installed and verified."),
            on_error=self._fail, context=self)
        self._update_buttons()

    def _progress(self, event) -> None:
        if not isinstance(event, Progress):
            return
        done, total = event.done, event.total
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(f"{format_size(done)} of {format_size(total)}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(format_size(done))

    def _cancel_download(self) -> None:
        if self._download_job is not None:
            self._download_job.cancel()
        self._show_message("Cancelling… the part already downloaded is kept for a resume.")
        self._update_buttons()

    def _import(self) -> None:
        key = self.selected_key()
        if not key:
            return
        entry = self._entries[key]
        weights, _ = QFileDialog.getOpenFileName(
            self, f"Weights file for {entry.name}", "", "Model weights (*.pt *.pth *.ckpt);;"
            "All files (*)")
        if not weights:
            return
        labels = None
        if self._services_needs_labels(key):
            labels, _ = QFileDialog.getOpenFileName(
                self, f"Label map for {entry.name}", "", "Label map (*.json);;All files (*)")
            if not labels:
                self._outcome, self._outcome_failed = (
                    f"{entry.name} was not imported: it also needs its label map (a .json "
                    "file).", True)
                self._show_message(self._outcome, True)
                return
        self.import_files(key, weights, labels)

    def _services_needs_labels(self, key: str) -> bool:
        try:
            return self._services.models.needs_labels_file(key)
        except Exception:  # noqa: BLE001 - store unusable: the import itself will explain
            return False

    def import_files(self, key: str, weights: str, labels: str | None = None) -> None:
        name = self._entries[key].name if key in self._entries else key
        self._start(key, f"Importing {name} (checking the file loads into the model)…")
        services = self._services
        job_runner().call(lambda: services.models.import_file(key, weights, labels),
                          lambda status: self._finish(f"{name} is installed."), self._fail,
                          context=self, name=f"importing {name}")

    def _verify(self) -> None:
        key = self.selected_key()
        if not key:
            return
        name = self._entries[key].name
        self._start(key, f"Verifying {name}…")

        def done(status):
            if status.installed:
                self._finish(f"{name}: verified, ready to use.")
            else:
                self._finish(f"{name} is damaged: {status.problem}", failed=True)

        services = self._services
        job_runner().call(lambda: services.models.verify(key), done, self._fail, context=self,
                          name=f"verifying {name}")

    def _remove(self) -> None:
        key = self.selected_key()
        if not key:
            return
        name = self._entries[key].name
        box = QMessageBox(QMessageBox.Icon.Question, "Remove model",
                          f"Delete the files of {name}? You can download or import it again "
                          "later.", parent=self)
        box.setObjectName("confirmRemoveDialog")
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _r: box.clickedButton() is remove and self.remove(key))
        box.open()

    def remove(self, key: str) -> None:
        name = self._entries[key].name if key in self._entries else key
        self._start(key, f"Removing {name}…")
        services = self._services
        job_runner().call(lambda: services.models.remove(key),
                          lambda freed: self._finish(f"{name} removed ({format_size(freed)} "
                                                     "freed)."), self._fail, context=self,
                          name=f"removing {name}")

    def reject(self) -> None:
        if self._download_job is not None:
            self._download_job.cancel()  # a download in progress stops; its part file is kept
        super().reject()
