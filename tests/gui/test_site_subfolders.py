"""Opening a folder whose subfolders are different trap sites: the window asks once (one trap
per subfolder / one for everything, "Remember my choice"), driven by mouse and keyboard, and
the tree shows what was chosen; a remembered choice asks nothing."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from trapgui.config import load_settings
from trapgui.gui.trap_choice_dialog import TrapChoiceDialog

SITES = ["DSLR", "panama", "sequential", "vermont"]


@pytest.fixture
def sites_folder(tmp_path, tiny_trap_images):
    root = tmp_path / "moths"
    shutil.copytree(tiny_trap_images, root)
    return root


def _names(window) -> list[str]:
    tree = window.tree.tree
    return sorted(tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount()))


def _question(qtbot) -> TrapChoiceDialog:
    qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), TrapChoiceDialog),
                    timeout=30_000)
    return QApplication.activeModalWidget()


def test_the_question_splits_by_mouse_and_remembers(qtbot, main_window, sites_folder):
    asked = []
    main_window.scanner.choiceNeeded.connect(lambda folder, plan: asked.append(folder))
    main_window.open_folders([str(sites_folder)])
    dialog = _question(qtbot)
    assert dialog.text() == "This folder holds 4 trap sites (DSLR, panama, sequential, vermont)."
    assert main_window.scanner.busy  # waiting for the answer counts as scanning
    dialog.grab().save(str(sites_folder.parent / "trap-choice.png"))
    qtbot.mouseClick(dialog.remember, Qt.MouseButton.LeftButton)
    assert dialog.remember.isChecked()
    qtbot.mouseClick(dialog.split_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not main_window.scanner.busy, timeout=60_000)
    qtbot.waitUntil(lambda: _names(main_window) == SITES, timeout=30_000)
    assert len(asked) == 1
    assert main_window.services.settings.site_subfolders == "subfolders"
    qtbot.waitUntil(lambda: load_settings(main_window.services.paths.settings_file)
                    .site_subfolders == "subfolders", timeout=10_000)
    # the remembered choice asks nothing: a second such folder is split at once
    other = sites_folder.parent / "season2"
    shutil.copytree(sites_folder, other)
    main_window.open_folders([str(other)])
    qtbot.waitUntil(lambda: not main_window.scanner.busy, timeout=60_000)
    qtbot.waitUntil(lambda: len(_names(main_window)) == 8, timeout=30_000)
    assert len(asked) == 1


def test_enter_and_escape_by_keyboard_and_a_remembered_one_trap(qtbot, main_window,
                                                                sites_folder):
    main_window.open_folders([str(sites_folder)])
    dialog = _question(qtbot)
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)  # Esc: one trap, as a folder always was
    qtbot.waitUntil(lambda: not main_window.scanner.busy, timeout=60_000)
    qtbot.waitUntil(lambda: _names(main_window) == ["moths"], timeout=30_000)
    assert main_window.services.settings.site_subfolders == "ask"  # not remembered
    # opened again: a folder catalogued as one trap is split only after asking
    main_window.open_folders([str(sites_folder)])
    dialog = _question(qtbot)
    assert "is one trap, but it holds 4 trap sites" in dialog.text()
    assert dialog.split_button.text() == "One trap per subfolder"
    dialog.grab().save(str(sites_folder.parent / "trap-choice-existing.png"))
    qtbot.keyClick(dialog, Qt.Key.Key_Return)  # the default: split
    qtbot.waitUntil(lambda: not main_window.scanner.busy, timeout=60_000)
    qtbot.waitUntil(lambda: _names(main_window) == SITES, timeout=30_000)


def test_remembered_one_trap_skips_the_question(qtbot, main_window, sites_folder):
    main_window.services.settings.site_subfolders = "one"
    asked = []
    main_window.scanner.choiceNeeded.connect(lambda folder, plan: asked.append(folder))
    main_window.open_folders([str(sites_folder)])
    qtbot.waitUntil(lambda: not main_window.scanner.busy, timeout=60_000)
    qtbot.waitUntil(lambda: _names(main_window) == ["moths"], timeout=30_000)
    assert asked == [] and QApplication.activeModalWidget() is None


def test_the_choice_is_changeable_in_the_settings_dialog(qtbot, services):
    from trapgui.gui.settings_dialog import SettingsDialog

    services.settings.site_subfolders = "subfolders"
    dialog = SettingsDialog(services)
    qtbot.addWidget(dialog)
    dialog.show()
    combo = dialog.site_subfolders
    assert combo.currentText() == "One trap per subfolder"
    combo.setCurrentIndex(combo.findData("ask"))
    dialog.ok_button.click()
    assert load_settings(services.paths.settings_file).site_subfolders == "ask"
