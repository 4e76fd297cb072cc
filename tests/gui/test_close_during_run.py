"""Closing the window while processing: it asks; "keep processing" keeps going; "stop and
quit" cancels cleanly (claims released, nothing lost) and the next start offers to resume."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtWidgets import QMessageBox
from sqlalchemy import text


@pytest.fixture
def traps(tmp_path, tiny_trap_images):
    # enough images that the run is still going while the test answers its dialogs
    for name in ("vermont", "panama"):
        dst = tmp_path / "traps" / name
        dst.mkdir(parents=True)
        for src in sorted((tiny_trap_images / name).glob("*.jpg")):
            for copy in range(COPIES):
                shutil.copy2(src, dst / f"{src.stem}-{copy}{src.suffix}")
    return tmp_path / "traps"


COPIES = 6


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
    # Pause at once: at most the batch in hand and one prefetched batch (2 images each) are
    # finished, so the run cannot end on its own while the test answers the dialogs (on a quiet
    # machine these 7 small images were all done before "Keep processing" was checked).
    qtbot.waitUntil(lambda: window.controller.state == "running", timeout=120_000)
    window.controller.pause()
    qtbot.waitUntil(lambda: window.controller.state == "paused", timeout=120_000)

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
    total = sum(1 for _ in traps.rglob("*.jpg"))
    assert left == total - states.get("done", 0) - states.get("failed", 0)
    assert left > 0, "the pause did not hold the run"

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
        from trapgui.gui.job_runner import job_runner

        job_runner().wait(30)
        qtbot.wait(50)
        second.close()
        second.deleteLater()
