"""Closing the window while processing: it asks; "keep processing" keeps going; "stop and
quit" cancels cleanly (claims released, nothing lost) and the next start offers to resume."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtWidgets import QMessageBox
from sqlalchemy import text


@pytest.fixture
def traps(tmp_path, tiny_trap_images):
    for name in ("vermont", "panama"):
        shutil.copytree(tiny_trap_images / name, tmp_path / "traps" / name)
    return tmp_path / "traps"


def _button(box: QMessageBox, label: str):
    return next(b for b in box.buttons() if b.text() == label)


def _visible(window, name):
    return next((b for b in window.findChildren(QMessageBox, name) if b.isVisible()), None)


def _dialog(qtbot, window, name) -> QMessageBox:
    qtbot.waitUntil(lambda: _visible(window, name) is not None, timeout=30_000)
    return _visible(window, name)


def test_close_asks_cancels_cleanly_and_offers_resume(qtbot, main_window, fast_settings, traps,
                                                      services):
    window = main_window
    window.open_folders([str(traps / "panama"), str(traps / "vermont")])
    qtbot.waitUntil(lambda: not window.scanner.busy and len(window.tree.summaries) == 2,
                    timeout=30_000)
    committed = []
    window.controller.committed.connect(lambda ids, _d: committed.extend(ids))
    window.tree.select_deployment(window.tree.summaries[0].id)
    window.tree.tree.topLevelItem(1).setSelected(True)
    window.start_processing("trap")
    qtbot.waitUntil(lambda: bool(committed), timeout=120_000)

    window.close()
    box = _dialog(qtbot, window, "confirmCloseDialog")
    assert window.isVisible(), "closed without asking"
    _button(box, "Keep processing").click()
    qtbot.wait(200)
    assert window.isVisible() and window.controller.busy

    window.close()
    box = _dialog(qtbot, window, "confirmCloseDialog")
    _button(box, "Stop and quit").click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    assert not window.controller.busy
    assert window.controller.running_threads() == 0
    summary = window.controller.last_summary
    assert summary.status == "cancelled"

    with services.db.session() as s:
        states = dict(s.execute(text("SELECT state, COUNT(*) FROM jobs GROUP BY state")).all())
    assert "claimed" not in states, "claims were not released"
    assert states.get("done", 0) + states.get("failed", 0) >= len(set(committed))
    left = states.get("pending", 0)
    assert left == 7 - states.get("done", 0) - states.get("failed", 0)
    if left == 0:
        pytest.skip("the machine finished every image before the cancel took effect")

    # next start: the same catalogue, a new window offers to finish the work
    from trapgui.gui.main_window import MainWindow

    second = MainWindow(services)
    second.show()
    second.start()
    try:
        box = _dialog(qtbot, second, "resumeDialog")
        assert f"{left:,} images" in box.text()
        _button(box, "Resume processing").click()
        qtbot.waitUntil(lambda: second.controller.busy, timeout=5_000)
        qtbot.waitUntil(lambda: not second.controller.busy, timeout=120_000)
        assert second.controller.last_summary.status == "finished"
        assert services.processing.unfinished() == 0
    finally:
        from trapgui.gui.background import wait_for_background

        wait_for_background(30)
        qtbot.wait(50)
        second.close()
        second.deleteLater()
