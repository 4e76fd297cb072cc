"""Changing "Night starts at" in Settings regroups every trap in the background, the status bar
says what happened and the tree shows the new nights; a catalogue left on another hour is
regrouped at start."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from trapgui.core.jobs import run_job
from tests.regroup_helpers import make_trap, store_detections

DAY_A, DAY_B = dt.date(2022, 6, 22), dt.date(2022, 7, 1)


def _shots(tmp_path) -> Path:
    """Where the screenshots go (TRAPGUI_SHOTS to look at them)."""
    folder = Path(os.environ.get("TRAPGUI_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _catalogue(services, tmp_path):
    traps = make_trap(tmp_path / "trapA", DAY_A), make_trap(tmp_path / "trapB", DAY_B)
    for trap in traps:
        run_job(services.catalogue.scan_job(str(trap), traps="one"))
    pid = store_detections(services.db, {"trapA": DAY_A, "trapB": DAY_B})
    run_job(services.tracking.tracking_job(pid))
    return traps


def _nights(window) -> dict[str, list[str]]:
    tree = window.tree.tree
    out = {}
    for i in range(tree.topLevelItemCount()):
        top = tree.topLevelItem(i)
        out[top.text(0)] = [top.child(j).text(0) for j in range(top.childCount())]
    return out


def test_a_new_night_start_in_settings_regroups_the_traps(qtbot, services, main_window, tmp_path):
    from trapgui.gui.settings_dialog import SettingsDialog

    assert services.settings.night_cutoff_hour == 12
    _catalogue(services, tmp_path)
    main_window.tree.reload()
    qtbot.waitUntil(lambda: len(_nights(main_window)) == 2, timeout=30_000)
    assert _nights(main_window)["trapA"] == ["Wed 22 Jun 2022", "Fri 24 Jun 2022"]

    main_window.open_settings()
    dialog = main_window.findChild(SettingsDialog)
    dialog.cutoff.setValue(18)
    assert dialog.cutoff_note.isVisible()
    assert "regroups every trap into nights that start at 18:00 (now 12:00)" in dialog.cutoff_note.text()
    dialog.grab().save(str(_shots(tmp_path) / "settings-cutoff.png"))
    dialog.ok_button.click()

    sentence = ("Nights now start at 18:00: 2 traps regrouped, 4 nights → 6; results kept; "
                "individuals counted again.")
    qtbot.waitUntil(lambda: main_window.status.currentMessage() == sentence, timeout=120_000)
    # each trap's nights are read again on their own: wait for both, then hold both
    regrouped = {"trapA": ["Tue 21 Jun 2022", "Wed 22 Jun 2022", "Thu 23 Jun 2022"],
                 "trapB": ["Thu 30 Jun 2022", "Fri 01 Jul 2022", "Sat 02 Jul 2022"]}
    qtbot.waitUntil(lambda: _nights(main_window) == regrouped, timeout=30_000)
    assert _nights(main_window)["trapB"] == ["Thu 30 Jun 2022", "Fri 01 Jul 2022",
                                             "Sat 02 Jul 2022"]
    main_window.grab().save(str(_shots(tmp_path) / "window-regrouped.png"))


def test_a_catalogue_on_another_hour_is_regrouped_at_start(qtbot, tmp_path):
    from trapgui.gui.main_window import MainWindow
    from trapgui.services.app_services import Services

    paths = dict(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                 db_path=tmp_path / "c.sqlite3")
    services = Services.create(**paths)
    _catalogue(services, tmp_path)
    services.settings.night_cutoff_hour = 18  # changed, never applied (or a killed regroup)
    services.save_settings()
    services.close()

    services = Services.create(**paths)
    window = MainWindow(services)
    try:
        window.show()
        window.start()
        qtbot.waitUntil(lambda: window.status.currentMessage().startswith(
            "Nights now start at 18:00: 2 traps regrouped"), timeout=120_000)
        qtbot.waitUntil(lambda: len(_nights(window).get("trapB", [])) == 3, timeout=30_000)
        assert services.catalogue.traps_to_regroup() == []
    finally:
        qtbot.waitUntil(lambda: not window.regroup.busy, timeout=60_000)
        window.close()
        services.close()


def test_a_new_hour_during_a_run_waits_for_the_run_to_end(qtbot, services, fast_settings,
                                                           main_window, tmp_path):
    from trapgui.services.processing_types import RunScope

    traps = make_trap(tmp_path / "trapA", DAY_A), make_trap(tmp_path / "trapB", DAY_B)
    for trap in traps:
        run_job(services.catalogue.scan_job(str(trap), traps="one"))
    window = main_window
    window.tree.reload()
    ids = tuple(d.id for d in services.catalogue.tree())
    window.controller.start(RunScope(deployment_ids=ids, description="both traps"))
    window.controller.pause()  # at once (however fast the machine): it stays on meanwhile
    assert window.controller.state == "paused"

    services.settings.night_cutoff_hour = 18
    window._settings_applied()  # what the dialog's OK does
    qtbot.waitUntil(lambda: window.status.currentMessage().startswith(
        "Nights will start at 18:00 once the run in progress ends"), timeout=30_000)
    assert not window.regroup.busy
    assert services.catalogue.traps_to_regroup() == ["trapA", "trapB"]

    window.controller.resume()
    qtbot.waitUntil(lambda: window.status.currentMessage().startswith(
        "Nights now start at 18:00: 2 traps regrouped, 4 nights → 6"), timeout=300_000)
    assert not window.controller.busy and services.catalogue.traps_to_regroup() == []
