"""Settings round-trip through the dialog: edit, validate, save to disk, read back."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog

from trapgui.config import load_settings
from trapgui.gui.settings_dialog import NONE, SettingsDialog


def _dialog(qtbot, services) -> SettingsDialog:
    dialog = SettingsDialog(services)
    qtbot.addWidget(dialog)
    dialog.show()
    # the catalogue fills the model choices in the background
    qtbot.waitUntil(lambda: dialog.combos["species_classifier"].count() > 3, timeout=60_000)
    return dialog


def test_edit_save_and_read_back(qtbot, services):
    dialog = _dialog(qtbot, services)
    species = dialog.combos["species_classifier"]
    species.setCurrentIndex(species.findData("uk_denmark_resnet50_2024"))
    assert "not installed" in species.currentText()
    binary = dialog.combos["binary_classifier"]
    binary.setCurrentIndex(binary.findData(NONE))
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.det_batch.setValue(8)
    dialog.cls_batch.setValue(128)
    dialog.top_k.setValue(3)
    dialog.det_threshold.setValue(0.35)
    dialog.cls_threshold.setValue(0.7)
    dialog.cutoff.setValue(14)
    applied = []
    dialog.applied.connect(lambda: applied.append(True))

    dialog.ok_button.click()

    assert applied and dialog.result() == QDialog.DialogCode.Accepted
    on_disk = load_settings(services.paths.settings_file)
    assert on_disk.species_classifier == "uk_denmark_resnet50_2024"
    assert on_disk.binary_classifier is None
    assert on_disk.device == "cpu"
    assert (on_disk.detection_batch_size, on_disk.classification_batch_size, on_disk.top_k) == (8, 128, 3)
    assert (on_disk.detection_threshold, on_disk.classification_threshold) == (0.35, 0.7)
    assert on_disk.night_cutoff_hour == 14
    assert services.settings.night_cutoff_hour == 14

    again = _dialog(qtbot, services)  # a new dialog shows what was saved
    assert again.combos["species_classifier"].currentData() == "uk_denmark_resnet50_2024"
    assert again.det_batch.value() == 8 and again.cutoff.value() == 14


def test_invalid_values_are_explained_and_nothing_is_saved(qtbot, services, tmp_path):
    dialog = _dialog(qtbot, services)
    dialog.db_path.setText(str(tmp_path))  # a folder, not a database file
    dialog.ok_button.click()
    assert dialog.isVisible()
    assert not dialog.problems.isHidden()
    assert "is a folder" in dialog.problems.text()
    assert not services.paths.settings_file.exists()


def test_unknown_keys_survive_the_dialog(qtbot, services):
    services.settings.extra["from_a_newer_version"] = {"x": 1}
    dialog = _dialog(qtbot, services)
    dialog.ok_button.click()
    assert load_settings(services.paths.settings_file).extra["from_a_newer_version"] == {"x": 1}


def test_restore_defaults(qtbot, services):
    services.settings.detection_batch_size = 32
    dialog = _dialog(qtbot, services)
    assert dialog.det_batch.value() == 32
    dialog.defaults_button.click()
    assert dialog.det_batch.value() == 4 and dialog.combos["detector"].currentData() == "builtin"
