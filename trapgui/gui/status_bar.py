"""Status bar: scan progress (with Cancel), queue state, device(s) in use, database path."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton


class StatusBar(QStatusBar):
    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self.setObjectName("statusBar")
        self.scan_label = QLabel("", self)
        self.scan_label.setToolTip("Indexing trap folders: reading image dates and sizes")
        self.scan_bar = QProgressBar(self)
        self.scan_bar.setMaximumWidth(160)
        self.scan_bar.setToolTip("Scan progress")
        self.scan_cancel = QToolButton(self)
        self.scan_cancel.setText("Stop scan")
        self.scan_cancel.setToolTip("Stop indexing; what was read so far is kept, and opening "
                                    "the folder again finishes the rest")
        for w in (self.scan_label, self.scan_bar, self.scan_cancel):
            self.addWidget(w)
            w.hide()
        self.queue_label = QLabel("Idle", self)
        self.queue_label.setObjectName("queueLabel")
        self.queue_label.setToolTip("Processing (local or remote): idle, what it is doing, "
                                    "paused or cancelling")
        self.device_label = QLabel(f"Device: {services.settings.device}", self)
        self.device_label.setObjectName("deviceLabel")
        self.device_label.setToolTip("Device(s) processing images (Settings ▸ Device)")
        self.db_label = QLabel(f"Database: {services.paths.db_path}", self)
        self.db_label.setObjectName("dbLabel")
        self.db_label.setToolTip(f"The catalogue database in use:\n{services.paths.db_path}")
        self.db_label.setMaximumWidth(420)
        for w in (self.queue_label, self.device_label, self.db_label):
            self.addPermanentWidget(w)

    def show_scan(self, text: str, done: int, total: int) -> None:
        self.scan_label.setText(text)
        self.scan_bar.setRange(0, max(0, total))
        self.scan_bar.setValue(done if total else 0)
        for w in (self.scan_label, self.scan_bar, self.scan_cancel):
            w.show()

    def hide_scan(self) -> None:
        for w in (self.scan_label, self.scan_bar, self.scan_cancel):
            w.hide()

    @Slot(str)
    def set_queue_state(self, state: str) -> None:
        self._state = state
        self.queue_label.setText({"idle": "Idle", "starting": "Starting…", "running": "Processing",
                                  "paused": "Paused", "cancelling": "Cancelling…"}.get(state, state))

    _state = "idle"

    @Slot(object)
    def show_progress(self, p) -> None:
        """What the run (local or remote) is doing, in a few words; and the devices it uses."""
        if self._state == "idle":
            return
        head = {"paused": "Paused", "cancelling": "Cancelling…"}.get(self._state, "Processing")
        if p.total is None:  # remote: the state says more than a count can
            what = p.message if self._state == "running" else head
            text = f"{what} · {p.done:,} {p.unit} done · {p.posted or 0:,} posted"
        else:
            text = f"{head} · {p.done + p.failed:,} / {p.total:,} {p.unit}"
        if self.queue_label.text() != text:
            self.queue_label.setText(text)
        names = ", ".join(d.device for d in p.devices)
        if names:
            self.device_label.setText(f"Device: {names}")

    def show_devices(self, names: list) -> None:
        """What this computer offers (before any run): "Device: auto (cpu)"."""
        setting = self._services.settings.device
        usable = [n.split(" ", 1)[0] for n in names if "not usable" not in n]
        self.device_label.setText(f"Device: {setting}" + (f" ({', '.join(usable)})"
                                                          if setting == "auto" else ""))
        self.device_label.setToolTip("Device(s) processing images (Settings ▸ Device). "
                                     "Found:\n" + "\n".join(names))

