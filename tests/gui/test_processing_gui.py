"""A real run from the GUI: scan, start, pause, resume, cancel, finish the rest; live results,
failures with their reasons. Built-in detector on downscaled shared images, one CPU worker."""

from __future__ import annotations

import shutil

import pytest

from trapgui.services.processing_types import RunScope


@pytest.fixture
def two_traps(tmp_path, tiny_trap_images):
    root = tmp_path / "traps"
    for name in ("vermont", "panama"):
        shutil.copytree(tiny_trap_images / name, root / name)
    return root


def _scan(qtbot, window, folders):
    window.open_folders([str(f) for f in folders])
    qtbot.waitUntil(lambda: not window.scanner.busy, timeout=30_000)
    qtbot.waitUntil(lambda: window.tree.tree.topLevelItemCount() == len(folders), timeout=10_000)


def _done(window) -> int:
    p = window.controller_last_progress
    return p.done + p.failed if p else 0


def _all_paused(window) -> bool:
    p = window.controller_last_progress
    return bool(p and p.paused and p.devices and all(d.state == "paused" for d in p.devices))


@pytest.fixture
def window(main_window, fast_settings):
    main_window.controller_last_progress = None
    main_window.controller.progress.connect(
        lambda p: setattr(main_window, "controller_last_progress", p))
    return main_window


def test_start_pause_resume_cancel_then_finish_the_rest(qtbot, window, two_traps):
    _scan(qtbot, window, [two_traps / "panama", two_traps / "vermont"])
    window.tree.select_deployment(window.tree.summaries[0].id)  # panama, 4 images
    window.tree.tree.topLevelItem(1).setSelected(True)  # and vermont, 3 images
    committed = []
    window.controller.committed.connect(lambda ids, _d: committed.extend(ids))
    panel = window.panel

    panel.start_button.click()
    assert window.controller.state == "starting"
    assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: bool(committed), timeout=120_000)  # first batch committed, live

    panel.pause_button.click()
    assert window.controller.state == "paused" and panel.pause_button.text() == "Resume"
    # the batch in hand finishes (and is written), then nothing moves
    qtbot.waitUntil(lambda: _all_paused(window), timeout=60_000)
    qtbot.wait(1000)
    frozen = _done(window)
    qtbot.wait(1500)
    assert _done(window) == frozen
    assert window.controller.state == "paused"

    panel.pause_button.click()  # resume
    assert window.controller.state == "running"
    qtbot.waitUntil(lambda: _done(window) > frozen, timeout=60_000)

    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=60_000)
    summary = window.controller.last_summary
    assert summary.status in ("cancelled", "finished")
    processed = window.services.processing
    left = processed.unfinished()
    assert left == 7 - summary.done - summary.failed  # nothing lost, nothing counted twice
    assert "images done" in panel.counts.text()

    # what was cancelled stays queued: "finish the interrupted run" completes it
    window.start_processing("resume")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=300_000)
    resumed = window.controller.last_summary
    assert resumed.status == "finished"
    assert processed.unfinished() == 0
    # this run's count and the scope's are both said ("Finished: 3 images done" beside 7/7)
    text = panel.counts.text()
    assert text.startswith(f"Finished: {resumed.done} images done"), text
    if resumed.done + resumed.failed < 7:
        assert "Of the 7 images in scope, 7 are processed now" in text, text
    assert not panel.log_label.text().startswith("Loading models")  # no stale info line
    # the tree refreshes its counts in the background: wait for both traps, not just the first
    # (every image processed or failed: nothing waiting)
    qtbot.waitUntil(lambda: len(window.tree.summaries) == 2 and all(
        n.waiting == 0 for d in window.tree.summaries for n in d.nights), timeout=10_000)
    assert panel.bar.value() == panel.bar.maximum()


def test_a_failing_image_is_listed_with_its_reason(qtbot, window, two_traps):
    _scan(qtbot, window, [two_traps / "vermont"])
    victim = sorted((two_traps / "vermont").glob("*.jpg"))[0]
    victim.write_bytes(b"\xff\xd8 this is not a JPEG any more")  # after the scan: decode fails
    dep = window.tree.summaries[0].id
    window.tree.select_deployment(dep)
    window.start_processing("trap")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=120_000)
    summary = window.controller.last_summary
    assert summary.status == "finished" and summary.failed == 1 and summary.done == 2
    assert window.panel.failures.count() == 1
    text = window.panel.failures.item(0).text()
    assert text.startswith(victim.name) and len(text) > len(victim.name) + 5
    assert "1 failed" in window.panel.failures_label.text()


def test_a_missing_classifier_is_left_out_said_and_offered_while_the_run_goes_on(
        qtbot, window, two_traps):
    """Offline day one: the settings' classifiers are not installed. The run processes with the
    built-in detector (as the CLI does), the panel says what is missing and what it would add,
    and its button opens the model manager while the run goes on."""
    from PySide6.QtWidgets import QDialog, QMessageBox

    _scan(qtbot, window, [two_traps / "vermont"])
    settings = window.services.settings
    settings.binary_classifier = "moth_binary_resnet50_2024"  # the default, never installed here
    settings.species_classifier = "quebec_vermont_resnet50_2024"
    panel = window.panel
    window.tree.select_deployment(window.tree.summaries[0].id)
    window.start_processing("trap")
    qtbot.waitUntil(lambda: panel.left_out_label.isVisible(), timeout=120_000)
    text = panel.left_out_label.text()
    assert text.startswith("Not installed, so left out of this run: 'Moth / Non-Moth "
                           "Classifier' (moth / non-moth labels), 'Quebec & Vermont Species "
                           "Classifier - Apr 2024' (species names)"), text
    assert "model manager" in text and panel.left_out_button.isVisible()
    panel.left_out_button.click()
    qtbot.waitUntil(lambda: window.findChild(QDialog, "modelManager") is not None, timeout=5000)
    manager = window.findChild(QDialog, "modelManager")
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=300_000)  # not stopped by it
    summary = window.controller.last_summary
    assert summary.status == "finished" and summary.done == 3
    assert window.findChild(QMessageBox, "errorDialog") is None
    # results, resume and views all speak of the pipeline that ran: builtin alone
    assert window.services.processing.spec().binary is None
    assert window.services.processing.spec().species is None
    assert window.services.processing.unfinished() == 0
    qtbot.waitUntil(lambda: manager.table.rowCount() > 3, timeout=60_000)
    panel.grab().save(str(two_traps.parent / "left-out.png"))
    manager.close()


def test_a_missing_detector_leads_to_the_model_manager(qtbot, window, two_traps):
    from PySide6.QtWidgets import QDialog, QMessageBox

    _scan(qtbot, window, [two_traps / "vermont"])
    window.services.settings.detector = "fasterrcnn_resnet50_2023"
    window.tree.select_deployment(window.tree.summaries[0].id)
    window.start_processing("trap")
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "errorDialog") is not None,
                    timeout=60_000)
    box = window.findChild(QMessageBox, "errorDialog")
    assert "not installed" in box.text() and "Traceback" not in box.text()
    box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: window.findChild(QDialog, "modelManager") is not None, timeout=5000)
    manager = window.findChild(QDialog, "modelManager")
    qtbot.waitUntil(lambda: manager.table.rowCount() > 3, timeout=60_000)
    manager.close()


def test_run_scope_for_selected_nights(qtbot, window, two_traps):
    _scan(qtbot, window, [two_traps / "vermont"])
    vermont = window.tree.tree.topLevelItem(0)
    window.tree.tree.setCurrentItem(vermont.child(0))
    dep, nights = window.tree.selection()
    assert len(nights) == 1 and window.tree.selected_scope() == "nights"
    started = []
    window.controller.started.connect(started.append)
    window.panel.start_button.click()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=120_000)
    assert started == ["1 selected night"]
    s = window.controller.last_summary
    assert s.done + s.failed == int(vermont.child(0).text(1))
    assert isinstance(RunScope(night_ids=(1,)).resume_only, bool)


def test_the_image_gets_most_of_the_window_while_nothing_runs(qtbot, window, two_traps):
    """At the default size the idle processing panel is a few lines (it took a quarter of the
    height, leaving the image about 780 x 210 px); a run gives it its room back."""
    _scan(qtbot, window, [two_traps / "vermont"])
    window.resize(1280, 820)
    window.tree.select_deployment(window.tree.summaries[0].id)
    window.tabs.setCurrentWidget(window.viewer)
    qtbot.waitUntil(lambda: window.viewer.current_image_id() is not None, timeout=30_000)
    qtbot.wait(200)
    idle_panel = window.panel_dock.height()
    canvas = window.viewer.canvas.viewport()
    assert idle_panel < 0.15 * window.height(), idle_panel
    assert canvas.height() > 0.5 * window.height(), (canvas.width(), canvas.height())
    window.grab().save(str(two_traps.parent / "idle.png"))

    window.start_processing("trap")
    qtbot.waitUntil(lambda: window.controller.busy and window.panel.bar.isVisible(),
                    timeout=10_000)
    qtbot.waitUntil(lambda: window.panel_dock.height() > idle_panel + 40, timeout=10_000)
    window.grab().save(str(two_traps.parent / "running.png"))
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=300_000)
    qtbot.wait(300)
    assert window.panel_dock.height() < 0.2 * window.height(), (
        window.panel_dock.height(), window.panel.sizeHint().height(), window.panel.counts.text(),
        window.panel.log_label.text())
    assert "Finished" in window.panel.counts.text() and window.panel.counts.isVisible()
    window.grab().save(str(two_traps.parent / "finished.png"))
