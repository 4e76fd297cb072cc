"""The trap's properties dialog: loads in the background, shows each problem under its field
(latitude 95 refused), previews the first photo's exact time, saves only valid changes."""

from __future__ import annotations

import pytest

from trapgui.gui.trap_properties_dialog import TrapPropertiesDialog
from trapgui.scan.indexer import scan_folder

pytestmark = pytest.mark.gui


@pytest.fixture
def trap(services, small_trap_images):
    return scan_folder(services.db, small_trap_images / "vermont").deployment_id


def open_dialog(qtbot, services, trap):
    dialog = TrapPropertiesDialog(services, trap)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.editors["name"].text() == "vermont", timeout=10_000)
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)
    return dialog


def test_edit_validate_and_save(qtbot, services, trap, tmp_path):
    dialog = open_dialog(qtbot, services, trap)
    assert "3 images in 2 nights" in dialog.folder_label.text()
    assert dialog.editors["deployment_start"].placeholderText() == "first image: 2022-06-22 00:04"
    qtbot.keyClicks(dialog.editors["latitude"], "95")
    qtbot.keyClicks(dialog.editors["longitude"], "-73.2121")
    qtbot.waitUntil(lambda: dialog.errors["latitude"].isVisible(), timeout=10_000)
    assert dialog.errors["latitude"].text() == \
        "Latitude must be between -90 and 90 degrees, not 95."
    assert not dialog.save_button.isEnabled()
    dialog.grab().save(str(tmp_path / "trap-properties-error.png"))
    dialog.editors["latitude"].setText("44.4759")
    dialog.editors["clock"].setText("America/New_York")
    dialog.editors["light_description"].setPlainText("LepiLED 15 W, dusk to dawn")
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=10_000)
    assert not dialog.errors["latitude"].isVisible()
    assert dialog.clock_preview.text().endswith("is 2022-06-22T00:04:59-04:00.")
    assert set(dialog.changes()) == {"latitude", "longitude", "clock", "light_description"}
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as saved:
        dialog.save_button.click()
    info = saved.args[0]
    assert info.has_coordinates and info.clock == "America/New_York"
    stored = services.traps.get(trap)
    assert stored.values["light_description"] == "LepiLED 15 W, dusk to dawn"
    assert "Position: 44.4759, -73.2121" in stored.tooltip


def test_problems_between_fields_and_clock(qtbot, services, trap):
    dialog = open_dialog(qtbot, services, trap)
    dialog.editors["latitude"].setText("44.5")
    qtbot.waitUntil(lambda: dialog.form_error.isVisible(), timeout=10_000)
    assert dialog.form_error.text() == "Give both latitude and longitude, or neither."
    dialog.editors["latitude"].setText("")
    dialog.editors["clock"].setText("Mars/Olympus_Mons")
    qtbot.waitUntil(lambda: dialog.errors["clock"].isVisible(), timeout=10_000)
    assert "neither a UTC offset nor a time-zone name" in dialog.errors["clock"].text()
    assert not dialog.form_error.isVisible() and not dialog.save_button.isEnabled()
    dialog.editors["clock"].setText("")
    dialog.editors["deployment_start"].setText("2022-06-30")
    dialog.editors["deployment_end"].setText("2022-06-01")
    qtbot.waitUntil(lambda: dialog.form_error.isVisible(), timeout=10_000)
    assert "end must be after its start" in dialog.form_error.text()


def test_unchanged_form_closes_without_saving(qtbot, services, trap):
    dialog = open_dialog(qtbot, services, trap)
    assert dialog.changes() == {}
    with qtbot.waitSignal(dialog.accepted, timeout=5_000):
        dialog.save_button.click()
