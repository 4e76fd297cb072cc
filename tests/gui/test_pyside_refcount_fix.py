"""PySide6 6.12.0 on Python 3.11 takes a reference from True on every ``emit()``; a GUI
session emits far more signals than True has references, and CPython then aborts. Importing
``trapgui.gui`` must prevent that (run in a child process: the failure is an abort)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

EMITS = """
import os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
{setup}
from PySide6.QtCore import QObject, Signal, QThreadPool
class O(QObject):
    s = Signal(object)
o = O()
for _ in range(20000):
    o.s.emit(1)
for _ in range(2000):
    QThreadPool.globalInstance().start(lambda: None)
QThreadPool.globalInstance().waitForDone()
print("survived")
"""


def _run(setup: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", EMITS.format(setup=setup)],
                          capture_output=True, text=True, timeout=120)


def test_gui_package_survives_many_emits():
    result = _run("import trapgui.gui")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "survived" in result.stdout


def test_the_bug_is_real_without_the_fix():
    from trapgui.gui import pyside_refcount_fix

    if not pyside_refcount_fix._applied:
        pytest.skip("this PySide6/Python does not have the bug")
    result = _run("")
    assert result.returncode != 0
    assert "dealloc" in result.stderr
