"""Processing controls and live progress: Start (trap / selected nights / images), Pause,
Resume, Cancel; progress bar, counts, speed, ETA, one line per device, and failures with
their reasons. The same panel shows local runs and remote (Antenna) runs: it is fed by the
window's :class:`RunController` with ``core.jobs`` events (already coalesced)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMenu, QProgressBar, QPushButton, QToolButton,
                               QVBoxLayout, QWidget)


MAX_LISTED = 500  # failures kept in the list


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProcessingPanel(QWidget):
    """Asks the main window for the scope with ``startRequested(kind)``: "trap", "nights",
    "images" (with the chosen files) or "resume"."""

    startRequested = Signal(str, list)
    modelsRequested = Signal(str)  # the model manager, with this model picked
    compactChanged = Signal(bool)  # idle: a few lines; the image gets the window
    def __init__(self, services, controller, parent=None):
        super().__init__(parent)
        self._services = services
        self._controller = controller
        self._failures = 0
        self._total = 0
        self._warnings: list[str] = []
        self._info_at: int | None = None  # images processed when the shown info line came
        self._processed = 0  # of the scope, earlier runs included (the bar's value)

        self.start_button = QToolButton(self)
        self.start_button.setObjectName("startButton")
        self.start_button.setText("Process selection")
        self.start_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.start_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.start_button.setToolTip("Process the trap or nights selected on the left with the "
                                     "models chosen in Settings (the arrow offers more choices)")
        menu = QMenu(self.start_button)
        self.trap_action = menu.addAction("Process whole trap", lambda: self._request("trap"))
        self.trap_action.setToolTip("Every night of the selected trap, including undated images")
        self.nights_action = menu.addAction("Process selected nights",
                                            lambda: self._request("nights"))
        self.images_action = menu.addAction("Process chosen images…", self._choose_images)
        self.resume_action = menu.addAction("Finish the interrupted run",
                                            lambda: self._request("resume"))
        menu.setToolTipsVisible(True)
        self.start_button.setMenu(menu)
        self.start_button.clicked.connect(lambda: self._request("selection"))

        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Pause after the batch in hand; Resume continues")
        self.pause_button.clicked.connect(self._toggle_pause)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop after the batch in hand; unprocessed images stay "
                                      "queued and nothing is lost")
        self.cancel_button.clicked.connect(controller.cancel)

        self.bar = QProgressBar(self)
        self.bar.setObjectName("progressBar")
        self.bar.setToolTip("Images processed (done or failed) out of the images in this run")
        self.bar.setFormat("")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.title = QLabel("Nothing is being processed.", self)
        self.title.setObjectName("runTitle")
        self.title.setToolTip("What is being processed, and with which models")
        self.title.setWordWrap(True)
        self.counts = QLabel("", self)
        self.counts.setObjectName("runCounts")
        self.counts.setToolTip("Images done / total, detections found in this run, speed and "
                               "estimated time left")
        self.counts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.devices = QLabel("", self)
        self.devices.setObjectName("runDevices")
        self.devices.setToolTip("Each device worker: its batch size, speed and state")
        self.failures_label = QLabel("No failures", self)
        self.failures_label.setObjectName("failuresLabel")
        self.failures_label.setToolTip("Images that could not be processed; each keeps its "
                                       "reason and is listed on the right")
        self.failures = QListWidget(self)
        self.failures.setObjectName("failuresList")
        self.failures.setToolTip("Failed images (or remote tasks) and why (also stored with "
                                 "the image)")
        self.failures.setMinimumWidth(260)
        self.failures.setMinimumHeight(60)
        self.log_label = QLabel("", self)
        self.log_label.setObjectName("runLog")
        self.log_label.setWordWrap(True)
        self.log_label.setToolTip("The run's latest message (hover for its recent warnings)")

        # the classifiers a run goes without (not installed): said, with the way to get them,
        # while the run goes on
        self.left_out_label = QLabel("", self)
        self.left_out_label.setObjectName("leftOutLabel")
        self.left_out_label.setWordWrap(True)
        self.left_out_button = QPushButton("Get models…", self)
        self.left_out_button.setObjectName("leftOutButton")
        self.left_out_button.setToolTip("Open the model manager to download or import the "
                                        "missing model (the run goes on meanwhile)")
        self.left_out_button.clicked.connect(
            lambda: self.modelsRequested.emit(self._left_out_key))
        self._left_out_key = ""
        notice = QHBoxLayout()
        notice.addWidget(self.left_out_label, 1)
        notice.addWidget(self.left_out_button, 0, Qt.AlignmentFlag.AlignTop)
        self._show_left_out(())

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        left = QVBoxLayout()
        left.addLayout(buttons)
        left.addWidget(self.title)
        left.addWidget(self.bar)
        left.addWidget(self.counts)
        left.addWidget(self.devices)
        left.addWidget(self.log_label)
        left.addLayout(notice)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.failures_label)
        right.addWidget(self.failures, 1)
        grid = QGridLayout(self)
        grid.addLayout(left, 0, 0)
        grid.addLayout(right, 0, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        self.compact = False

        controller.stateChanged.connect(self._state_changed)
        controller.started.connect(self._started)
        controller.planned.connect(self._planned)
        controller.progress.connect(self._progress)
        controller.failed.connect(self._failed)
        controller.logged.connect(self._logged)
        controller.finished.connect(self._finished)
        self._state_changed("idle")

    # ---- requests -----------------------------------------------------------------------
    def _request(self, kind: str, files: list | None = None) -> None:
        self.startRequested.emit(kind, files or [])

    def _choose_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Choose images to process", "", "Images (*.jpg *.jpeg *.JPG *.JPEG)")
        if files:
            self._request("images", files)

    def _toggle_pause(self) -> None:
        self._controller.toggle_pause()

    # ---- updates ------------------------------------------------------------------------
    def set_compact(self, compact: bool) -> None:
        """While nothing runs the panel is its buttons and the last run's sentence (and its
        failures, if any): the live-only lines and an empty failure list give their room to
        the views."""
        self.compact = compact
        self.bar.setVisible(not compact)
        self.devices.setVisible(not compact and bool(self.devices.text()))
        self.log_label.setVisible(not compact or bool(self.log_label.text()))
        listed = not compact or self._failures > 0
        self.failures.setVisible(listed)
        self.failures_label.setVisible(listed)
        self.counts.setVisible(not compact or bool(self.counts.text()))
        self.compactChanged.emit(compact)

    @Slot(str)
    def _state_changed(self, state: str) -> None:
        idle = state == "idle"
        if idle != self.compact:
            self.set_compact(idle)
        self.start_button.setEnabled(idle)
        self.pause_button.setEnabled(state in ("starting", "running", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.cancel_button.setEnabled(state in ("starting", "running", "paused"))
        if state == "cancelling":
            self.log_label.setText("Cancelling: finishing the batch in hand; the rest stays "
                                   "queued…")
        elif state == "paused":
            self.log_label.setText("Paused. Press Resume to continue.")
        elif state == "starting":
            self.log_label.setText("Loading models…")

    @Slot(str)
    def _started(self, description: str) -> None:
        self._failures = 0
        self._warnings = []
        self._total = 0
        self._show_left_out(())
        self._info_at, self._processed = None, 0
        self.failures.clear()
        self.failures_label.setText("No failures")
        self.title.setText(f"Processing {description}" if description else "Processing")
        self.bar.setRange(0, 0)  # busy until the first progress arrives
        self.bar.setFormat("")
        self.counts.setText("Preparing…")
        self.devices.setText("")

    def _show_left_out(self, left_out) -> None:
        self._left_out_key = left_out[0].key if left_out else ""
        self.left_out_label.setText(left_out_text(left_out))
        self.left_out_label.setVisible(bool(left_out))
        self.left_out_button.setVisible(bool(left_out))

    @Slot(object)
    def _planned(self, plan) -> None:
        self._show_left_out(getattr(plan, "left_out", ()))
        self.title.setText(f"{self.title.text()} — {plan.pipeline}")
        if plan.in_scope:
            self._total = plan.in_scope
            self.counts.setText(f"{plan.in_scope:,} images in scope, "
                                f"{plan.newly_queued:,} newly queued")

    @Slot(object)
    def _progress(self, p) -> None:
        processed = p.done + p.failed
        self._processed = processed
        if self._info_at is not None and processed > self._info_at:
            # an info line ("Loading models on cpu…") is news until the run moves on
            self._info_at = None
            self.log_label.setText("")
        rate = f"{p.rate:.1f} img/s" if p.rate else "– img/s"
        eta = "paused" if p.paused else f"ETA {format_duration(p.eta_s)}"
        if p.total is None:  # a remote job: the server does not say how many tasks it has
            self.bar.setRange(0, 0)
            rate = f"{p.rate:.2f} {p.unit}/s" if p.rate else f"– {p.unit}/s"
            resent = f" ({p.resent:,} re-sent: the server gave them out again)" if p.resent else ""
            self.counts.setText(
                f"{p.done:,} {p.unit} done · {p.failed:,} failed · {p.posted or 0:,} posted"
                f"{resent} · {p.waiting_to_post:,} waiting to post · "
                f"{self._stored(p.detections)} · {rate}")
        else:
            self._total = p.total
            self.bar.setFormat(f"%v / %m {p.unit}")
            self.bar.setRange(0, max(1, p.total))
            self.bar.setValue(processed)
            self.counts.setText(f"{processed:,} / {p.total:,} {p.unit} · "
                                f"{self._stored(p.detections)} · {rate} · {eta}")
        lines = [f"{d.device} — batch {d.batch_size} — {d.images_per_s:.1f} img/s — {d.state}"
                 for d in p.devices]
        self.devices.setText("\n".join(lines) if lines else p.message)
        self.devices.setToolTip("\n".join(f"{d.device}: {d.name}, {d.images_done:,} images"
                                          for d in p.devices) or "Each device worker")

    def _stored(self, detections: int) -> str:
        """A run counts every box it stores; the views count those at the threshold."""
        threshold = self._services.settings.detection_threshold
        return (f"{detections:,} detections stored (all scores; the views count those "
                f"≥ {threshold:.2f})")

    @Slot(list)
    def _failed(self, events: list) -> None:
        for e in events:
            name = e.name.rsplit("/", 1)[-1] if e.name else f"image {e.item_id}"
            item = QListWidgetItem(f"{name}: {e.reason}")
            item.setToolTip(f"{e.name}\n{e.reason}")
            self.failures.addItem(item)
        self._failures += len(events)
        self.failures_label.setText(f"{self._failures:,} failed image(s)")
        self._trim()

    @Slot(list)
    def _logged(self, events: list) -> None:
        self.log_label.setText(events[-1].message)
        self._info_at = self._processed if events[-1].level == "info" else None
        warnings = [e for e in events if e.level in ("warning", "error")]
        if warnings:
            self._warnings = (self._warnings + [e.message for e in warnings])[-20:]
            self.log_label.setToolTip("\n".join(self._warnings))

    def _trim(self) -> None:
        while self.failures.count() > MAX_LISTED:
            self.failures.takeItem(0)
        self.failures.scrollToBottom()

    @Slot(object)
    def _finished(self, summary) -> None:
        if summary is None:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.bar.setFormat("")
            self.counts.setText("")
            self.title.setText("Nothing is being processed.")
            return
        self.bar.setRange(0, max(1, self._total or summary.done + summary.failed))
        if summary.status == "finished":
            self.bar.setValue(self.bar.maximum())
        self.title.setText(self.title.text().replace("Processing ", "Processed ", 1))
        text = summary_text(summary, self._services.settings.detection_threshold)
        if summary.posted is None and self._total and (
                summary.done + summary.failed != self._total):
            # a resumed (or cancelled) run: this run's count is not the scope's; say both
            scope_done = max(0, self._total - summary.remaining)
            text += (f" Of the {self._total:,} images in scope, {scope_done:,} are processed "
                     "now (earlier runs included).")
        self.counts.setText(text)
        if summary.posted is not None:  # the remote state line said what it was doing
            self.devices.setText("")
        notes = list(summary.notes) + ([summary.error] if summary.error else [])
        self.log_label.setText("; ".join(notes))
        if self.compact:
            self.set_compact(True)  # the sentences just written decide what stays


def _scores(threshold: float | None) -> str:
    return "" if threshold is None else f" (all scores; the views count those ≥ {threshold:.2f})"


def left_out_text(left_out) -> str:
    """One sentence for the classifiers a run goes without."""
    if len(left_out) == 1:
        return left_out[0].sentence("get it in the model manager")
    parts = ", ".join(f"'{m.name}' ({m.adds})" for m in left_out)
    return (f"Not installed, so left out of this run: {parts}; get them in the model manager "
            "and process again to add them.")


def summary_text(summary, threshold: float | None = None) -> str:
    """One sentence for a finished run, local or remote. The detections are every box stored;
    ``threshold`` (the views' detection threshold) is named beside them."""
    verb = {"finished": "Finished", "cancelled": "Cancelled", "crashed": "Stopped by an error"}
    head = verb.get(summary.status, summary.status)
    took = format_duration(summary.elapsed_s)
    if summary.posted is not None:  # remote: results go back to the server
        text = (f"{head}: {summary.done:,} task(s) done, {summary.failed:,} failed, "
                f"{summary.posted:,} posted in {took} ({summary.images_per_s:.2f} tasks/s), "
                f"{summary.detections:,} detections stored{_scores(threshold)}.")
        if getattr(summary, "resent", 0):  # not every run says
            text += (f" {summary.resent:,} result(s) were re-sent (the server gave those tasks "
                     "out again).")
        if summary.unposted or summary.remaining:
            text += (f" {summary.unposted:,} result(s) not yet posted and "
                     f"{summary.remaining:,} task(s) unfinished are kept and sent next time.")
        return text
    text = (f"{head}: {summary.done:,} images done, {summary.failed:,} failed, "
            f"{summary.detections:,} detections stored{_scores(threshold)} in {took} "
            f"({summary.images_per_s:.1f} img/s)")
    if summary.remaining:
        text += f". {summary.remaining:,} images remain queued."
    return text
