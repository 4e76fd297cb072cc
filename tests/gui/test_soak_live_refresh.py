"""Soak: the window must never crash while a run refreshes every view.

A real main window (offscreen, in a child process under faulthandler) processes small copies of
the shared trap photos with the built-in detector, again and again, while the image viewer
reloads its boxes and crop strip, and the detections table, the species summary, the nights
overview and the trap tree refresh many times a second: far more often than the window does
on its own (once a second), so the GUI thread tears down and rebuilds Qt items while the
engine's threads run. Before the fix this ended in a segmentation fault in
``CropStrip.set_crops`` → ``clear()`` within minutes (docs/architecture.md, "Lessons"); a crash
here shows as a non-zero exit with faulthandler's stacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SOAK_S = 35  # of live refreshing; the whole test stays well under a minute on a quiet machine

CHILD = r"""
import faulthandler, os, shutil, sys, time
from pathlib import Path
faulthandler.enable()
soak_s, trap, images = float(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from trapgui.gui.launch import prepare_application
app = QApplication([])
prepare_application(app)
from trapgui.services.app_services import Services
from trapgui.services.processing_types import RunScope
from trapgui.gui.main_window import MainWindow
services = Services.create()
s = services.settings
s.detector, s.binary_classifier, s.species_classifier, s.order_classifier = (
    "builtin", None, None, None)
s.device, s.detection_batch_size, s.detection_threshold = "cpu", 1, 0.0
window = MainWindow(services)
window.show()
window.start()
state = {"runs": 0, "commits": 0, "crops": 0, "deadline": None, "dep": None}
timers = []

def every(ms, fn):
    t = QTimer()
    t.timeout.connect(fn)
    t.start(ms)
    timers.append(t)

def crops():
    window.viewer._reload_boxes()
    state["crops"] += 1

def again():
    if time.monotonic() < state["deadline"]:
        window.controller.start(RunScope(deployment_ids=(state["dep"],), include_undated=True,
                                         requeue=True, description="soak"))

def scanned(report):
    state["dep"] = report.deployment_id
    window.tree.select_deployment(report.deployment_id)
    window.tabs.setCurrentWidget(window.viewer)
    state["deadline"] = time.monotonic() + soak_s
    again()
    every(15, crops)  # the viewer's boxes and crop strip
    every(40, window._refresh_views)  # every view and the tree
    every(400, lambda: window.viewer.step(1 if state["crops"] % 2 else -1))
    QTimer.singleShot(int(soak_s * 1000), finish)

def finish():
    hard = state.setdefault("hard_deadline", state["deadline"] + 4 * soak_s)
    if state["commits"] == 0 and time.monotonic() < hard:
        # a loaded machine: the refreshing goes on until a run has committed a batch
        state["deadline"] = time.monotonic() + 5
        QTimer.singleShot(5000, finish)
        return
    for t in timers:
        t.stop()
    window.controller.cancel()
    QTimer.singleShot(100, lambda: stop() if not window.controller.busy else None)

def stop():
    print("survived", state["runs"], "runs", state["commits"], "commits", state["crops"],
          "crop rebuilds", flush=True)
    app.exit(0)

def finished(_summary):
    state["runs"] += 1
    if state["deadline"] is not None and time.monotonic() >= state["deadline"]:
        stop()
    else:
        QTimer.singleShot(50, again)

window.scanner.scanFinished.connect(scanned)
window.controller.committed.connect(lambda ids, _d: state.__setitem__(
    "commits", state["commits"] + 1))
window.controller.finished.connect(finished)
window.open_folders([str(trap)])
app.exec()
os._exit(0)  # skip teardown: the run is cancelled, only crashes matter here
"""


@pytest.fixture
def soak_trap(tmp_path, tiny_trap_images):
    trap = tmp_path / "soak-trap"
    trap.mkdir()
    for i, src in enumerate(sorted(tiny_trap_images.rglob("*.jpg"))[:6]):
        shutil.copy2(src, trap / f"{i:02d}-{src.name}")
    return trap


def test_live_refresh_of_every_view_during_runs_never_crashes(tmp_path, soak_trap):
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen",
               TRAPGUI_CONFIG_DIR=str(tmp_path / "config"),
               TRAPGUI_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", CHILD, str(SOAK_S), str(soak_trap),
         str(tmp_path)], capture_output=True, text=True, env=env, timeout=280)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"the window crashed (exit {result.returncode}):\n{out[-6000:]}"
    words = result.stdout.split()
    assert "survived" in words, out[-3000:]
    commits, rebuilds = int(words[words.index("commits") - 1]), int(words[-3])
    assert commits >= 1 and rebuilds >= 100, out[-2000:]  # it did refresh during a run
