"""Settings ▸ Process on a cluster: where runs go (this computer, a running Dask scheduler,
worker processes here, SLURM or PBS batch jobs through dask-jobqueue) and Test connection,
which asks the cluster for its workers, threads, memory, GPUs and dashboard.

The test runs on the job runner (it connects, may start processes or a batch job, and waits
for a worker: seconds to minutes), never on the GUI thread; closing the dialog cancels it.
"""

from __future__ import annotations

import html
import threading

from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QSpinBox, QWidget)

from trapgui.config import Settings
from trapgui.gui.job_runner import job_runner

MODES = (("off", "Off: process on this computer"),
         ("address", "A running Dask scheduler"),
         ("local", "Dask worker processes on this computer"),
         ("slurm", "SLURM batch jobs (dask-jobqueue)"),
         ("pbs", "PBS batch jobs (dask-jobqueue)"))
TEST_TIMEOUT_S = 120.0  # a batch job may wait in the queue; the test says so when none joins
WORKERS_LISTED = 8  # a big cluster is summed up, not listed worker by worker


class ClusterSettingsGroup(QGroupBox):
    def __init__(self, services, settings: Settings, parent=None):
        super().__init__("Process on a cluster", parent)
        self.setObjectName("clusterSettings")
        self._services = services
        self._cancel = threading.Event()  # set when the dialog closes: the test stops waiting
        self.testing = False
        self.form = form = QFormLayout(self)

        self.mode = QComboBox(self)
        for value, text in MODES:
            self.mode.addItem(text, value)
        self.mode.setToolTip("Runs of local folders go to a Dask cluster; the catalogue stays "
                             "here and is written by this computer only")
        self.address = QLineEdit(self)
        self.address.setPlaceholderText("tcp://host:8786")
        self.address.setToolTip("The address of a running Dask scheduler; its workers must "
                                "see the images and the models folder at the same paths")
        self.workers = QSpinBox(self)
        self.workers.setRange(1, 256)
        self.workers.setToolTip("Worker processes started on this computer for each run "
                                "(they share its cores)")
        self.config_file = QLineEdit(self)
        self.config_file.setToolTip("Queue, cores, memory, GPUs per job, walltime and job count "
                                    "of the batch jobs (TOML); a commented example is written "
                                    "there on first use")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._choose_config)
        config_row = QWidget(self)
        row = QHBoxLayout(config_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.config_file, 1)
        row.addWidget(browse)

        self.test_button = QPushButton("Test connection", self)
        self.test_button.setObjectName("testClusterButton")
        self.test_button.setToolTip("Connect (or start the cluster for a moment) and list its "
                                    "workers and their GPUs")
        self.test_button.clicked.connect(self.test_connection)
        self.result = QLabel("", self)
        self.result.setObjectName("clusterTestResult")
        self.result.setWordWrap(True)
        self.result.setOpenExternalLinks(True)
        self.result.setMinimumWidth(420)

        form.addRow("Where", self.mode)
        form.addRow("Scheduler address", self.address)
        form.addRow("Worker processes", self.workers)
        form.addRow("Cluster settings file", config_row)
        form.addRow(self.test_button, self.result)
        self._rows = {"address": self.address, "local": self.workers, "jobs": config_row}
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.show_settings(settings)

    # ---- settings ------------------------------------------------------------------------
    def show_settings(self, s: Settings) -> None:
        self.mode.setCurrentIndex(max(0, self.mode.findData(s.cluster_mode)))
        self.address.setText(s.cluster_address)
        self.workers.setValue(s.cluster_local_workers)
        self.config_file.setText(s.cluster_config_file or "")
        self.config_file.setPlaceholderText(f"default: {self._default_config()}")
        self._mode_changed()

    def apply_to(self, new: Settings) -> None:
        new.cluster_mode = self.mode.currentData()
        new.cluster_address = self.address.text().strip()
        new.cluster_local_workers = self.workers.value()
        new.cluster_config_file = self.config_file.text().strip() or None

    def problems_of(self, new: Settings) -> list[str]:
        if new.cluster_mode == "address" and not new.cluster_address:
            return ["Processing on a Dask scheduler needs its address (tcp://host:8786)."]
        return []

    def _default_config(self) -> str:
        from trapgui.services.cluster_service import config_file  # plain Python: no Dask

        return str(config_file(Settings(), self._services.paths.config_dir))

    def _mode_changed(self, *_args) -> None:
        mode = self.mode.currentData()
        shown = {"address": mode == "address", "local": mode == "local",
                 "jobs": mode in ("slurm", "pbs")}
        for key, widget in self._rows.items():
            self.form.setRowVisible(widget, shown[key])
        self.test_button.setEnabled(mode != "off" and not self.testing)
        if not self.testing:
            self.result.setText("" if mode == "off" else
                                "Not tested yet." if mode != "local" else
                                "Starts the worker processes for a moment.")

    def _choose_config(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Cluster settings file", self.config_file.text() or self._default_config(),
            "TOML (*.toml);;All files (*)", options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.config_file.setText(path)

    # ---- Test connection -------------------------------------------------------------------
    def test_connection(self) -> None:
        if self.testing:
            return
        edited = Settings()
        self.apply_to(edited)
        problems = self.problems_of(edited)
        if problems:
            self._show_failure(problems[0])
            return
        self.testing = True
        self._cancel = threading.Event()
        self.test_button.setEnabled(False)
        self.result.setText(f"Connecting to {self.mode.currentText().lower()}…")
        processing, cancel = self._services.processing, self._cancel
        job_runner().call(
            lambda: processing.test_cluster(
                edited.cluster_mode, edited.cluster_address,
                local_workers=edited.cluster_local_workers,
                config_file=edited.cluster_config_file or None,
                timeout_s=TEST_TIMEOUT_S, cancelled=cancel.is_set),
            self._tested, self._test_failed, context=self, name="test cluster")

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._cancel.set()  # a closed dialog's test stops waiting for workers
        super().hideEvent(event)

    def _tested(self, info) -> None:
        self._end_test()
        if not info.ok:
            self._show_failure(info.message)
            return
        lines = [f"<b>{html.escape(info.message)}</b>"]
        for w in info.workers[:WORKERS_LISTED]:
            memory = f"{w.memory_bytes / 2**30:.1f} GiB" if w.memory_bytes else "no memory limit"
            gpus = ", ".join(w.gpus) if w.gpus else "no GPU"
            lines.append(html.escape(f"{w.address} on {w.host}: {w.threads} thread"
                                     f"{'s' if w.threads != 1 else ''}, {memory}, {gpus}"))
            lines += [f"&nbsp;&nbsp;<i>{html.escape(m)}</i>" for m in w.messages]
        if len(info.workers) > WORKERS_LISTED:
            lines.append(f"… and {len(info.workers) - WORKERS_LISTED} more workers")
        if info.dashboard:
            url = html.escape(info.dashboard)
            lines.append(f'Dashboard: <a href="{url}">{url}</a>')
        else:
            lines.append(html.escape(f"Scheduler {info.address} serves no dashboard."))
        self.result.setText("<br>".join(lines))

    def _test_failed(self, exc: BaseException) -> None:
        self._end_test()
        self._show_failure(f"The test could not run: {exc}")

    def _end_test(self) -> None:
        self.testing = False
        self.test_button.setEnabled(self.mode.currentData() != "off")

    def _show_failure(self, sentence: str) -> None:
        self.result.setText(f'<span style="color:#b3261e">{html.escape(sentence)}</span>')
