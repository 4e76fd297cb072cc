"""The export dialog writes the selected nights' detections at the threshold to a real CSV
file, shows progress, offers to open the folder, and cancels without leaving a file."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from tests.gui.results_fixtures import populate
from trapgui.db import open_database
from trapgui.gui.export_dialog import ExportDialog
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    path = root / "catalogue.sqlite3"
    db = open_database(path)
    cat = populate(db, root / "trap", n_detections=10_000, n_nights=3, images_per_night=20,
                   with_classifications=True)
    db.close()
    services = Services.create(config_dir=root / "config", db_path=path)
    yield services, cat, path
    services.close()


def _ids(path, sql, *args):
    with sqlite3.connect(path) as con:
        return [r[0] for r in con.execute(sql, args)]


def test_export_selected_nights_at_threshold(qtbot, catalogue, tmp_path):
    services, cat, path = catalogue
    nights = cat.night_ids[:2]
    dialog = ExportDialog(services, nights, (0.4, 0.5))
    qtbot.addWidget(dialog)
    dialog.show()
    expected = sorted(_ids(path, """SELECT d.id FROM detections d JOIN images i
        ON i.id = d.image_id WHERE i.night_id IN (?, ?) AND d.score >= 0.4""", *nights))
    qtbot.waitUntil(lambda: f"{len(expected):,} detections will" in dialog.count_label.text(),
                    timeout=10_000)
    qtbot.waitUntil(lambda: dialog.scope_label.text()
                    == "2 selected nights: Mon 20 Jun 2022, Tue 21 Jun 2022", timeout=10_000)
    assert not dialog.open_folder_button.isEnabled()

    out = tmp_path / "out" / "detections.csv"
    out.parent.mkdir()
    dialog.path_edit.setText(str(out))
    progress = []
    dialog.progressed.connect(lambda done, total: progress.append((done, total)))
    with qtbot.waitSignal(dialog.finished_export, timeout=30_000) as sig:
        dialog.export_button.click()
        assert dialog.is_running() and dialog.progress.isVisible()
        assert not dialog.export_button.isEnabled()
    assert sig.args == [str(out)]

    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["detection_id"]) for r in rows) == expected
    assert all(float(r["detection_score"]) >= 0.4 for r in rows)
    assert {r["night"] for r in rows} == {"2022-06-20", "2022-06-21"}
    # the dialog's bar reached the end; the job reports in steps (the window shows the latest)
    assert progress[-1] == (len(expected), len(expected))
    from trapgui.core.jobs import EventLog, Progress, run_job

    events = EventLog()
    run_job(services.export.detections_job(tmp_path / "again.csv", nights, 0.4, None), events)
    steps = [(e.done, e.total) for e in events.of(Progress)]
    assert len(steps) > 1 and steps[-1] == (len(expected), len(expected))
    assert all(e.unit == "rows" for e in events.of(Progress))
    assert dialog.progress.value() == dialog.progress.maximum()
    assert str(out) in dialog.result_label.text()
    assert dialog.open_folder_button.isEnabled()
    opened = []
    dialog.open_url = lambda url: opened.append(url.toLocalFile())
    dialog.open_folder_button.click()
    assert opened == [str(out.parent)]


def test_label_threshold_option(qtbot, catalogue, tmp_path):
    services, cat, path = catalogue
    dialog = ExportDialog(services, [cat.night_ids[0]], 0.5)
    qtbot.addWidget(dialog)
    dialog.label_check.setChecked(True)
    dialog.label_score.setValue(0.8)
    out = tmp_path / "labels.csv"
    dialog.path_edit.setText(str(out))
    with qtbot.waitSignal(dialog.finished_export, timeout=30_000):
        dialog.start_export()
    expected = _ids(path, """SELECT count(*) FROM detections d JOIN images i ON i.id =
        d.image_id WHERE i.night_id = ? AND d.score >= 0.5 AND d.top_score >= 0.8""",
                    cat.night_ids[0])[0]
    with out.open(newline="", encoding="utf-8") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == expected


def test_cancel_leaves_no_file_and_bad_folder_is_a_message(qtbot, catalogue, tmp_path):
    services, cat, path = catalogue
    dialog = ExportDialog(services, [], 0.0)  # everything: 10,000 rows in 5 partitions
    qtbot.addWidget(dialog)
    dialog.show()
    out = tmp_path / "cancelled.csv"
    dialog.path_edit.setText(str(out))
    dialog.start_export()
    assert dialog.close_button.text() == "Cancel export"
    dialog.close_button.click()  # cancels, does not close
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)
    assert "cancelled" in dialog.result_label.text()
    assert dialog.isVisible()
    assert not out.exists() and not list(tmp_path.glob(".cancelled.csv*"))
    assert not dialog.open_folder_button.isEnabled()

    dialog.path_edit.setText(str(tmp_path / "no-such-folder" / "x.csv"))
    dialog.start_export()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=10_000)
    assert "does not exist" in dialog.result_label.text()
    assert dialog.export_button.isEnabled()
