"""The trap tree's context menu: Properties…, Rename trap… and Remove trap… (it says how many
images and results go, asks, and the tree follows), and the tree's tooltip with the trap's
metadata (real catalogue, real widgets)."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtWidgets import QMessageBox

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.core.jobs import run_job
from trapgui.gui.job_runner import job_runner
from trapgui.gui.trap_tree import TrapTree
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui
N1 = dt.date(2022, 6, 21)


@pytest.fixture
def two_traps(tmp_path):
    services = Services.create(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                               db_path=tmp_path / "c.sqlite3")
    a = make_catalogue(services.db, "north")
    add_frames(a, N1, 3, {"moth-a": 0})
    b = make_catalogue(services.db, "south")
    add_frames(b, N1, 2, {"moth-b": 1})
    run_job(services.tracking.tracking_job(a.pipeline_id), None)
    yield services, a, b
    job_runner().wait(30)
    services.close()


def _tree(qtbot, services) -> TrapTree:
    tree = TrapTree(services)
    qtbot.addWidget(tree)
    with qtbot.waitSignal(tree.loaded, timeout=30_000):
        tree.reload()
    return tree


def _names(tree) -> list[str]:
    return [tree.tree.topLevelItem(i).text(0) for i in range(tree.tree.topLevelItemCount())]


def test_the_menu_of_a_trap_and_of_its_nights(qtbot, two_traps):
    services, a, _b = two_traps
    tree = _tree(qtbot, services)
    top = tree.tree.topLevelItem(0)
    assert tree.trap_at(top) == (a.deployment_id, "north")
    assert tree.trap_at(top.child(0)) == (a.deployment_id, "north")
    menu = tree.actions.menu(a.deployment_id, "north")
    assert [x.text() for x in menu.actions() if x.text()] == [
        "Properties…", "Rename trap…", "Remove trap…"]
    tree.actions.busy = lambda: True
    remove = tree.actions.menu(a.deployment_id, "north").actions()[-1]
    assert not remove.isEnabled() and "Stop processing" in remove.toolTip()


def test_properties_open_and_saving_refreshes_the_tooltip(qtbot, two_traps):
    services, a, _b = two_traps
    tree = _tree(qtbot, services)
    assert "Camera clock: not set" in tree.tree.topLevelItem(0).toolTip(0)
    tree.actions.open_properties(a.deployment_id)
    dialog = tree.actions.dialog
    qtbot.waitUntil(lambda: dialog.editors["site_name"].isEnabled(), timeout=30_000)
    dialog.set_text("site_name", "Lake shore farm")
    dialog.set_text("latitude", "44.4759")
    dialog.set_text("longitude", "-73.2121")
    dialog.set_text("clock", "America/New_York")
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=30_000)
    with qtbot.waitSignal(tree.loaded, timeout=30_000):
        dialog.save()
    tip = tree.tree.topLevelItem(0).toolTip(0)
    assert "Site: Lake shore farm" in tip and "Position: 44.4759, -73.2121" in tip
    assert "Camera clock: America/New_York" in tip


def test_rename_and_an_empty_name_is_a_sentence(qtbot, two_traps):
    services, a, _b = two_traps
    tree = _tree(qtbot, services)
    tree.actions.rename(a.deployment_id, "north")
    dialog = tree.actions.dialog
    assert dialog.textValue() == "north"
    with qtbot.waitSignal(tree.loaded, timeout=30_000):
        dialog.setTextValue("Lake shore")
        dialog.accept()
    assert _names(tree) == ["Lake shore", "south"]
    tree.actions.rename(a.deployment_id, "Lake shore")
    tree.actions.dialog.setTextValue("  ")
    tree.actions.dialog.accept()
    qtbot.waitUntil(lambda: tree.findChild(QMessageBox, "errorDialog") is not None,
                    timeout=30_000)
    assert "empty" in tree.findChild(QMessageBox, "errorDialog").text()
    assert services.traps.get(a.deployment_id).name == "Lake shore"


def test_remove_says_what_goes_and_asks_first(qtbot, two_traps):
    services, a, b = two_traps
    tree = _tree(qtbot, services)
    tree.actions.ask_remove(a.deployment_id, "north")
    qtbot.waitUntil(lambda: isinstance(tree.actions.dialog, QMessageBox), timeout=30_000)
    box = tree.actions.dialog
    assert "'north'" in box.text()
    assert "3 images in 1 night, 3 processed, 6 detections, 2 individuals" in box.informativeText()
    assert "stay on disk" in box.informativeText()
    box.button(QMessageBox.StandardButton.Cancel).click()  # nothing happens
    job_runner().wait(30)
    assert len(services.traps.list()) == 2

    tree.actions.ask_remove(a.deployment_id, "north")
    qtbot.waitUntil(lambda: tree.actions.dialog is not box, timeout=30_000)
    box = tree.actions.dialog
    remove = next(b_ for b_ in box.buttons() if b_.text() == "Remove")
    with qtbot.waitSignal(tree.actions.removed, timeout=30_000) as sig:
        remove.click()
    assert sig.args == [a.deployment_id]
    qtbot.waitUntil(lambda: _names(tree) == ["south"], timeout=30_000)
    assert [t.id for t in services.traps.list()] == [b.deployment_id]
