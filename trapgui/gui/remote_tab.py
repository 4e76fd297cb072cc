"""The Remote tab: process Antenna platform jobs on this computer.

Server address and token (masked, with a Show toggle; saved in the system keyring or an
owner-only file), a Test connection button with a clear answer, the pipelines this computer
can serve, the open jobs for the checked pipelines, and Start / Stop with the same kind of
progress as local runs. Every network call and model load runs off the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

from trapgui.gui.background import run_in_background
from trapgui.gui.processing_panel import format_duration
from trapgui.services.remote_types import (ConnectionReport, RemoteImagesProcessed,
                                          RemoteRunFinished, RemoteRunMessage, RemoteRunStatus)

OK_STYLE = "color: #1b7a2e;"
ERROR_STYLE = "color: #b3261e;"
MAX_MESSAGES = 200


class _EventRelay(QObject):
    """Lives in the GUI thread; its signal carries run events from worker threads."""

    event = Signal(object)


class RemoteTab(QWidget):
    imagesProcessed = Signal(list)  # catalogue image ids with new results
    runningChanged = Signal(bool)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._running = False
        self._relay = _EventRelay(self)
        self._relay.event.connect(self._on_event)

        # --- connection
        self.url_edit = QLineEdit(services.settings.remote_base_url, self)
        self.url_edit.setObjectName("remoteUrl")
        self.url_edit.setPlaceholderText("https://antenna.insectai.org/api/v2")
        self.url_edit.setToolTip("The API address of the Antenna server")
        self.token_edit = QLineEdit(self)
        self.token_edit.setObjectName("remoteToken")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("API token from your Antenna account")
        self.show_token = QCheckBox("Show", self)
        self.show_token.setObjectName("showToken")
        self.show_token.toggled.connect(self._toggle_token)
        self.test_button = QPushButton("Test connection", self)
        self.test_button.setObjectName("testConnection")
        self.test_button.clicked.connect(self.test_connection)
        self.connection_label = QLabel("Not tested yet.", self)
        self.connection_label.setObjectName("connectionResult")
        self.connection_label.setWordWrap(True)
        self.connection_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(self.show_token)
        form = QFormLayout()
        form.addRow("Server", self.url_edit)
        form.addRow("Token", token_row)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.connection_label, 1)
        conn_box = QGroupBox("Connection", self)
        conn_layout = QVBoxLayout(conn_box)
        conn_layout.addLayout(form)
        conn_layout.addLayout(test_row)

        # --- pipelines and jobs
        self.pipelines = QListWidget(self)
        self.pipelines.setObjectName("remotePipelines")
        self.pipelines.setToolTip("Pipelines to serve; greyed ones need models (see Models)")
        self.pipelines.itemChanged.connect(self._pipelines_changed)
        self.refresh_button = QPushButton("Refresh jobs", self)
        self.refresh_button.setObjectName("refreshJobs")
        self.refresh_button.clicked.connect(self.refresh_jobs)
        self.jobs = QListWidget(self)
        self.jobs.setObjectName("remoteJobs")
        self.jobs.setToolTip("Open jobs of the checked pipelines")
        self.jobs.itemSelectionChanged.connect(self._update_buttons)
        self.jobs_label = QLabel("Check pipelines, then Refresh jobs.", self)
        self.jobs_label.setWordWrap(True)
        pipes_box = QGroupBox("Pipelines this computer can run", self)
        QVBoxLayout(pipes_box).addWidget(self.pipelines)
        jobs_box = QGroupBox("Open jobs", self)
        jobs_layout = QVBoxLayout(jobs_box)
        jobs_layout.addWidget(self.refresh_button)
        jobs_layout.addWidget(self.jobs, 1)
        jobs_layout.addWidget(self.jobs_label)
        lists = QHBoxLayout()
        lists.addWidget(pipes_box, 1)
        lists.addWidget(jobs_box, 1)

        # --- run
        self.start_button = QPushButton("Process selected job", self)
        self.start_button.setObjectName("startRemote")
        self.start_button.setToolTip("Pull this job's tasks, process them here and post the "
                                     "results, until the job has no work left")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopRemote")
        self.stop_button.setToolTip("Finish the tasks already claimed, post their results, stop")
        self.stop_button.clicked.connect(self.stop)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("remoteBar")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.status_label = QLabel("Nothing is being processed.", self)
        self.status_label.setObjectName("remoteStatus")
        self.counts_label = QLabel("", self)
        self.counts_label.setObjectName("remoteCounts")
        self.counts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.messages = QListWidget(self)
        self.messages.setObjectName("remoteMessages")
        self.messages.setToolTip("Warnings and failed images (each failed task was answered "
                                 "to the server with its reason)")
        self.messages.setMaximumHeight(120)
        hint = QLabel("Processed images appear in the trap list as “Antenna job N”, with their "
                      "boxes, like local folders.", self)
        hint.setWordWrap(True)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button)
        run_row.addWidget(self.stop_button)
        run_row.addStretch(1)
        run_box = QGroupBox("Processing", self)
        run_layout = QVBoxLayout(run_box)
        run_layout.addLayout(run_row)
        run_layout.addWidget(self.status_label)
        run_layout.addWidget(self.bar)
        run_layout.addWidget(self.counts_label)
        run_layout.addWidget(self.messages)
        run_layout.addWidget(hint)

        layout = QVBoxLayout(self)
        layout.addWidget(conn_box)
        layout.addLayout(lists, 1)
        layout.addWidget(run_box)
        self._update_buttons()
        self._load()

    # ---- loading ------------------------------------------------------------------------
    def _load(self) -> None:
        remote = self._services.remote
        url = self.url_edit.text().strip()
        run_in_background(lambda: remote.stored_token(url), self._token_loaded, self._show_error)
        run_in_background(remote.pipeline_choices, self._pipelines_loaded, self._show_error)

    @Slot(object)
    def _token_loaded(self, token: str) -> None:
        if token and not self.token_edit.text():
            self.token_edit.setText(token)

    @Slot(object)
    def _pipelines_loaded(self, choices) -> None:
        chosen = set(self._services.settings.remote_pipelines)
        self.pipelines.blockSignals(True)
        self.pipelines.clear()
        for c in sorted(choices, key=lambda c: (not c.ready, c.slug)):
            item = QListWidgetItem(c.slug if c.ready else f"{c.slug} — {c.detail}")
            item.setData(Qt.ItemDataRole.UserRole, c.slug)
            item.setToolTip(c.detail)
            flags = Qt.ItemFlag.ItemIsUserCheckable
            if c.ready:
                flags |= Qt.ItemFlag.ItemIsEnabled
            item.setFlags(flags)
            item.setCheckState(Qt.CheckState.Checked if c.ready and c.slug in chosen
                               else Qt.CheckState.Unchecked)
            self.pipelines.addItem(item)
        self.pipelines.blockSignals(False)
        if not any(c.ready for c in choices):
            self.jobs_label.setText("No pipeline can run yet: install its models in Models.")
        self._update_buttons()

    def checked_pipelines(self) -> list[str]:
        out = []
        for i in range(self.pipelines.count()):
            item = self.pipelines.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    @Slot(QListWidgetItem)
    def _pipelines_changed(self, _item) -> None:
        slugs = self.checked_pipelines()
        run_in_background(lambda: self._services.remote.save_pipelines(slugs), None,
                          self._show_error)
        self._update_buttons()

    # ---- connection ---------------------------------------------------------------------
    @Slot(bool)
    def _toggle_token(self, shown: bool) -> None:
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown
                                    else QLineEdit.EchoMode.Password)

    def _connection(self) -> tuple[str, str]:
        return self.url_edit.text().strip(), self.token_edit.text().strip()

    @Slot()
    def test_connection(self) -> None:
        url, token = self._connection()
        remote = self._services.remote
        self.test_button.setEnabled(False)
        self.connection_label.setStyleSheet("")
        self.connection_label.setText("Connecting…")

        run_in_background(lambda: remote.test_and_save(url, token), self._tested,
                          self._test_failed)

    @Slot(object)
    def _tested(self, report: ConnectionReport) -> None:
        self.test_button.setEnabled(True)
        self.connection_label.setStyleSheet(OK_STYLE if report.ok else ERROR_STYLE)
        prefix = "✓ " if report.ok else "✗ "
        self.connection_label.setText(prefix + report.message)
        if report.ok and self.checked_pipelines():
            self.refresh_jobs()

    @Slot(object)
    def _test_failed(self, exc: BaseException) -> None:
        self._tested(ConnectionReport(False, str(exc)))

    # ---- jobs ---------------------------------------------------------------------------
    @Slot()
    def refresh_jobs(self) -> None:
        slugs = self.checked_pipelines()
        if not slugs:
            self.jobs.clear()
            self.jobs_label.setText("Check at least one pipeline.")
            return
        url, token = self._connection()
        self.refresh_button.setEnabled(False)
        self.jobs_label.setText("Asking the server…")
        run_in_background(lambda: self._services.remote.list_jobs(slugs, url, token),
                          self._jobs_loaded, self._jobs_failed)

    @Slot(object)
    def _jobs_loaded(self, rows) -> None:
        self.refresh_button.setEnabled(True)
        self.jobs.clear()
        for row in rows:
            item = QListWidgetItem(f"Job {row.id} — {row.pipeline_slug}")
            item.setData(Qt.ItemDataRole.UserRole, row.id)
            self.jobs.addItem(item)
        if rows:
            self.jobs.setCurrentRow(0)
        self.jobs_label.setText(f"{len(rows)} open job(s)." if rows
                                else "No open jobs for the checked pipelines.")
        self._update_buttons()

    @Slot(object)
    def _jobs_failed(self, exc: BaseException) -> None:
        self.refresh_button.setEnabled(True)
        self.jobs_label.setText(f"Could not list jobs: {exc}")
        self.jobs_label.setStyleSheet(ERROR_STYLE)

    def selected_job(self) -> int | None:
        item = self.jobs.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    # ---- run ----------------------------------------------------------------------------
    @Slot()
    def start(self) -> None:
        job_id = self.selected_job()
        slugs = self.checked_pipelines()
        if job_id is None or not slugs or self._running:
            return
        url, token = self._connection()
        self._set_running(True)
        self.messages.clear()
        self.status_label.setText(f"Starting job {job_id}: loading models…")
        self.counts_label.setText("")
        self.bar.setRange(0, 0)
        try:
            self._services.remote.start(slugs, self._relay.event.emit, job_id=job_id,
                                        base_url=url, token=token)
        except Exception as exc:  # noqa: BLE001 - shown, the tab stays usable
            self._set_running(False)
            self._show_error(exc)

    @Slot()
    def stop(self) -> None:
        if self._running:
            self.status_label.setText("Stopping: finishing the claimed tasks and posting "
                                      "their results…")
            self.stop_button.setEnabled(False)
            self._services.remote.stop()

    def _set_running(self, running: bool) -> None:
        self._running = running
        self._update_buttons()
        self.runningChanged.emit(running)

    @Slot(object)
    def _on_event(self, event) -> None:
        if isinstance(event, RemoteRunStatus):
            self._show_status(event)
        elif isinstance(event, RemoteRunMessage):
            if event.level in ("warning", "error"):
                self._add_message(event.level, event.text)
            elif self._running:
                self.status_label.setText(event.text)
        elif isinstance(event, RemoteImagesProcessed):
            self.imagesProcessed.emit(list(event.image_ids))
        elif isinstance(event, RemoteRunFinished):
            self._finished(event)

    def _show_status(self, s: RemoteRunStatus) -> None:
        states = {"starting": "Loading models…", "working": "Processing",
                  "idle": "Waiting for tasks (other workers may hold the last ones)",
                  "stopping": "Stopping: finishing the claimed tasks…",
                  "posting": "Posting the last results…", "stopped": "Stopped"}
        self.status_label.setText(states.get(s.state, s.state))
        rate = f"{s.images_per_s:.2f} img/s" if s.images_per_s else "– img/s"
        self.counts_label.setText(
            f"{s.tasks_done:,} tasks done · {s.failures:,} failed · {s.posted:,} posted · "
            f"{s.waiting_to_post:,} waiting to post · {s.detections:,} detections · {rate} · "
            f"ETA {format_duration(s.eta_s)}")
        if s.last_error:
            self.counts_label.setToolTip(f"Last problem: {s.last_error}")

    def _finished(self, f: RemoteRunFinished) -> None:
        self._set_running(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if not f.error else 0)
        if f.error:
            self.status_label.setText("Stopped with an error.")
            self.status_label.setStyleSheet(ERROR_STYLE)
            self._add_message("error", f.error)
        else:
            self.status_label.setStyleSheet("")
            extra = ""
            if f.unposted or f.unfinished:
                extra = (f" {f.unposted} result(s) not yet posted and {f.unfinished} task(s) "
                         "unfinished are kept and sent next time.")
            self.status_label.setText(f"Finished: {f.tasks_done} task(s) done, {f.failures} "
                                      f"failed, {f.posted} posted in "
                                      f"{format_duration(f.elapsed_s)}.{extra}")
            self.refresh_jobs()

    def _add_message(self, level: str, text: str) -> None:
        item = QListWidgetItem(("⚠ " if level == "warning" else "✗ ") + text)
        item.setToolTip(text)
        self.messages.addItem(item)
        while self.messages.count() > MAX_MESSAGES:
            self.messages.takeItem(0)
        self.messages.scrollToBottom()

    def _update_buttons(self) -> None:
        has_job = self.jobs.currentItem() is not None
        self.start_button.setEnabled(not self._running and has_job and bool(self.checked_pipelines()))
        self.stop_button.setEnabled(self._running)
        for w in (self.url_edit, self.token_edit, self.pipelines, self.refresh_button):
            w.setEnabled(not self._running)

    @Slot(object)
    def _show_error(self, exc: BaseException) -> None:
        self._add_message("error", str(exc))

    @property
    def running(self) -> bool:
        return self._running
