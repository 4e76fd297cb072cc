"""The Remote tab: process Antenna platform jobs on this computer.

Server address and token (masked, with a Show toggle; saved in the system keyring or an
owner-only file), a Test connection button with a clear answer, the pipelines this computer
can serve, the open jobs for the checked pipelines, and a Start button. The run itself is a
run like a local one: the window's RunController runs it, and the processing panel, the
Processing menu and the status bar show and control it (Pause, Cancel). Every network call and
model load runs off the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from trapgui.gui.job_runner import job_runner
from trapgui.services.remote_types import ConnectionReport

OK_STYLE = "color: #1b7a2e;"
ERROR_STYLE = "color: #b3261e;"


class RemoteTab(QWidget):
    def __init__(self, services, controller, parent=None):
        super().__init__(parent)
        self._services = services
        self._controller = controller

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
        self.run_label = QLabel(self)
        self.run_label.setObjectName("remoteRunNote")
        self.run_label.setWordWrap(True)
        self.run_label.setText("Progress, Pause and Cancel are in the Processing panel and "
                               "menu, as for local runs. Processed images appear in the trap "
                               "list as “Antenna job N”, with their boxes.")
        self.problems = QListWidget(self)
        self.problems.setObjectName("remoteMessages")
        self.problems.setToolTip("Problems with the connection or the job list")
        self.problems.setMaximumHeight(80)
        self.problems.hide()
        # the start sits with the job it starts, so it is never below the fold
        jobs_layout.addWidget(self.start_button)
        jobs_layout.addWidget(self.run_label)
        conn_layout.addWidget(self.problems)

        layout = QVBoxLayout(self)
        layout.addWidget(conn_box)
        layout.addLayout(lists, 1)
        controller.stateChanged.connect(self._run_state)
        controller.started.connect(self._run_started)
        controller.finished.connect(self._run_finished)
        self._update_buttons()
        self._load()

    # ---- loading ------------------------------------------------------------------------
    def _load(self) -> None:
        remote = self._services.remote
        url = self.url_edit.text().strip()
        job_runner().call(lambda: remote.stored_token(url), self._token_loaded, self._show_error,
                          context=self)
        job_runner().call(remote.pipeline_choices, self._pipelines_loaded, self._show_error,
                          context=self)

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
        remote = self._services.remote
        job_runner().call(lambda: remote.save_pipelines(slugs), None, self._show_error,
                          context=self)
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

        job_runner().call(lambda: remote.test_and_save(url, token), self._tested, self._test_failed, context=self,
                          name="testing the connection")

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
        remote = self._services.remote
        job_runner().call(lambda: remote.list_jobs(slugs, url, token), self._jobs_loaded,
                          self._jobs_failed, context=self, name="listing the open jobs")

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
        if job_id is None or not slugs or self._controller.busy:
            return
        url, token = self._connection()
        self._controller.start_remote(slugs, job_id=job_id, base_url=url, token=token)

    @Slot(str)
    def _run_state(self, _state: str) -> None:
        self._update_buttons()

    @Slot(object)
    def _run_finished(self, summary) -> None:
        if summary is not None and self._remote_run:
            self.refresh_jobs()  # the job may be done now
        self._remote_run = False

    @Slot(str)
    def _run_started(self, _description: str) -> None:
        self._remote_run = self._controller.kind == "remote"

    _remote_run = False

    def _add_problem(self, text: str) -> None:
        item = QListWidgetItem("✗ " + text)
        item.setToolTip(text)
        self.problems.addItem(item)
        while self.problems.count() > 50:
            self.problems.takeItem(0)
        self.problems.show()
        self.problems.scrollToBottom()

    def _update_buttons(self) -> None:
        has_job = self.jobs.currentItem() is not None
        busy = self._controller.busy
        self.start_button.setEnabled(not busy and has_job and bool(self.checked_pipelines()))
        self.start_button.setToolTip(
            "Wait for the run in progress to end (Processing panel)" if busy else
            "Pull this job's tasks, process them here and post the results, until the job has "
            "no work left")
        remote_busy = busy and self._controller.kind == "remote"
        for w in (self.url_edit, self.token_edit, self.pipelines, self.refresh_button):
            w.setEnabled(not remote_busy)

    @Slot(object)
    def _show_error(self, exc: BaseException) -> None:
        self._add_problem(str(exc))
