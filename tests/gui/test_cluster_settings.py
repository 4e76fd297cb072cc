"""Settings ▸ Process on a cluster against a real Dask scheduler with a real worker process
(``distributed.LocalCluster`` on loopback): the rows follow the choice, Test connection lists
the workers on the job runner, failures are one sentence, OK saves the choice."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from tests.cluster_helpers import START_TIMEOUT_S
from trapgui.config import load_settings
from trapgui.gui.settings_dialog import SettingsDialog

distributed = pytest.importorskip("distributed")
WAIT_MS = int(START_TIMEOUT_S * 1000)


@pytest.fixture(scope="module")
def scheduler():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=START_TIMEOUT_S)
        yield client.scheduler.address, next(iter(client.scheduler_info()["workers"]))


def _dialog(qtbot, services) -> SettingsDialog:
    dialog = SettingsDialog(services)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _choose(group, mode: str) -> None:
    group.mode.setCurrentIndex(group.mode.findData(mode))


def _visible(group) -> set[str]:
    return {name for name, widget in (("address", group.address), ("workers", group.workers),
                                      ("config", group.config_file))
            if group.form.isRowVisible(widget if name != "config" else group._rows["jobs"])}


def test_rows_follow_the_choice(qtbot, services):
    group = _dialog(qtbot, services).cluster
    assert group.mode.currentData() == "off" and not group.test_button.isEnabled()
    assert _visible(group) == set()
    _choose(group, "address")
    assert _visible(group) == {"address"} and group.test_button.isEnabled()
    _choose(group, "local")
    assert _visible(group) == {"workers"}
    for mode in ("slurm", "pbs"):
        _choose(group, mode)
        assert _visible(group) == {"config"}
    assert group.config_file.placeholderText().endswith("cluster.toml")


def test_test_connection_lists_the_workers_and_ok_saves(qtbot, services, scheduler, tmp_path):
    address, worker = scheduler
    dialog = _dialog(qtbot, services)
    group = dialog.cluster
    _choose(group, "address")
    group.address.setText(f"  {address} ")
    qtbot.mouseClick(group.test_button, Qt.MouseButton.LeftButton)
    assert group.testing and not group.test_button.isEnabled()  # the GUI thread is free
    assert "Connecting" in group.result.text()
    qtbot.waitUntil(lambda: not group.testing, timeout=WAIT_MS)
    text = group.result.text()
    assert text.startswith("<b>1 worker, 1 thread, ") and "GiB, no GPU.</b>" in text, text
    assert f"{worker} on " in text and ": 1 thread, " in text
    assert "Dashboard: <a href=" in text or "serves no dashboard" in text
    assert group.test_button.isEnabled()
    group.grab().save(str(tmp_path / "cluster_settings.png"))

    # the same choice for runs: saved on OK, read back from disk
    _choose(group, "local")
    group.workers.setValue(3)
    _choose(group, "address")
    dialog.ok_button.click()
    assert dialog.result() == QDialog.DialogCode.Accepted
    on_disk = load_settings(services.paths.settings_file)
    assert (on_disk.cluster_mode, on_disk.cluster_address, on_disk.cluster_local_workers) == (
        "address", address, 3)


def test_failures_are_one_sentence(qtbot, services):
    dialog = _dialog(qtbot, services)
    group = dialog.cluster
    _choose(group, "address")
    group.test_button.click()  # no address: said at once, nothing started
    assert not group.testing
    assert "needs its address (tcp://host:8786)." in group.result.text()

    group.address.setText("tcp://127.0.0.1:9")  # nothing listens there
    group.test_button.click()
    qtbot.waitUntil(lambda: not group.testing, timeout=WAIT_MS)
    text = group.result.text()
    assert "Could not connect to the Dask scheduler at tcp://127.0.0.1:9" in text, text
    assert text.count("<span") == 1 and "Traceback" not in text

    group.address.setText("")
    dialog.ok_button.click()  # not saved: the dialog says what to correct
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "needs its address" in dialog.problems.text()
