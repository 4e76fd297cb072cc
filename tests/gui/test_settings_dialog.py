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


def test_floors_and_measured_batch_sizes(qtbot, services):
    from trapgui.pipeline.batch_size_cache import TunedEntry

    services.processing.batch_size_cache().put("k", TunedEntry(
        "cpu (Test CPU, 2 threads)", "moth_binary_resnet50_2024", "classification", 16, 33.0,
        "2025-01-01T00:00:00+00:00", {"8": 30.0, "16": 33.0}, memory_mb=115.4,
        measured_memory={"8": 45.0, "16": 115.4}, memory_cap_mb=256.0))
    dialog = _dialog(qtbot, services)
    assert dialog.auto_batch.isChecked() and not dialog.det_batch.isEnabled()
    qtbot.waitUntil(lambda: "16 crops" in dialog.tuned.text(), timeout=60_000)
    assert "cpu, 2 threads" in dialog.tuned.text()
    assert "16 crops (115 MB a batch)" in dialog.tuned.text()
    # text that came after the dialog was laid out gets its room (it was clipped)
    qtbot.waitUntil(lambda: dialog.tuned.height() >= dialog.tuned.sizeHint().height(),
                    timeout=10_000)
    # the detector's own floors are the defaults, shown as such
    qtbot.waitUntil(lambda: dialog.storage_floor.specialValueText() == "default (0.20)",
                    timeout=60_000)
    assert dialog.storage_floor.text() == "default (0.20)"
    dialog.combos["detector"].setCurrentIndex(
        dialog.combos["detector"].findData("fasterrcnn_mobilenet_v3_2023"))
    assert dialog.classification_floor.text() == "default (0.50)"
    assert dialog.edited_settings().storage_floor is None
    dialog.auto_batch.setChecked(False)
    assert dialog.det_batch.isEnabled() and dialog.tuned.isHidden()
    dialog.classification_floor.setValue(0.3)
    dialog.ok_button.click()
    on_disk = load_settings(services.paths.settings_file)
    assert on_disk.auto_batch_sizes is False and on_disk.storage_floor is None
    assert on_disk.classification_floor == 0.3
    # what the settings choose (a run without the uninstalled classifiers has one floor only)
    spec = services.processing.settings_spec()
    assert (spec.storage_floor, spec.classification_floor) == (0.1, 0.3)
    assert spec.detection_batch_size == 4  # fixed sizes now
