"""The Export dialog offers every format of ``core.export_formats``, checks a request before it
starts (a problem disables Export and is said in a sentence), runs the export as a job and
says what it wrote (real tracked catalogue, real files)."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.core.export_formats import FORMATS
from trapgui.core.jobs import run_job
from trapgui.gui.export_dialog import ExportDialog
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui
N1, N2 = dt.date(2022, 6, 21), dt.date(2022, 6, 22)


@pytest.fixture
def tracked(tmp_path):
    services = Services.create(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                               db_path=tmp_path / "c.sqlite3")
    cat = make_catalogue(services.db)
    add_frames(cat, N1, 4, {"moth-a": 0, "moth-b": 1})
    add_frames(cat, N2, 4, {"moth-c": 2})
    run_job(services.tracking.tracking_job(cat.pipeline_id), None)
    yield services, cat
    services.close()


def _dialog(qtbot, services, nights, fmt: str) -> ExportDialog:
    dialog = ExportDialog(services, nights, (0.5, 0.5))
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.checked, timeout=30_000):
        dialog.chooser.set_format(fmt)
    return dialog


def _set_path(qtbot, dialog, path) -> None:
    with qtbot.waitSignal(dialog.checked, timeout=30_000):
        dialog.path_edit.setText(str(path))


def test_every_format_is_offered_with_a_name_that_fits(qtbot, tracked, tmp_path):
    services, cat = tracked
    dialog = _dialog(qtbot, services, [], "detections")
    keys = [dialog.chooser.list.item(i).text() for i in range(dialog.chooser.list.count())]
    assert keys == [f.title for f in FORMATS]
    for fmt in FORMATS:
        dialog.chooser.set_format(fmt.key)
        name = dialog.path_edit.text().rsplit("/", 1)[-1]
        assert name.startswith(fmt.default_name) and name.endswith(fmt.suffix)
        assert dialog.label_caption.isVisible() == fmt.counts_individuals


def test_individuals_csv_through_the_dialog(qtbot, tracked, tmp_path):
    services, cat = tracked
    dialog = _dialog(qtbot, services, list(cat.nights.values()), "occurrences")
    out = tmp_path / "individuals.csv"
    _set_path(qtbot, dialog, out)
    assert dialog.problems() == () and dialog.export_button.isEnabled()
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000) as sig:
        dialog.export_button.click()
    assert sig.args == [str(out)]
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = sum(len(services.tracking.night_occurrences(cat.pipeline_id, n))
                   for n in cat.nights.values())
    assert len(rows) == expected == 5  # 3 moths and the screw on each of the 2 nights
    assert dialog.result_label.text().startswith("Wrote ") and str(out) in dialog.result_label.text()
    assert dialog.open_folder_button.isEnabled()


def test_the_matrix_counts_at_the_dialog_thresholds(qtbot, tracked, tmp_path):
    services, cat = tracked
    dialog = _dialog(qtbot, services, [], "matrix")
    assert dialog.score_caption.text() == "Detection threshold:"
    out = tmp_path / "matrix.csv"
    _set_path(qtbot, dialog, out)
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000):
        dialog.start_export()
    text = out.read_text(encoding="utf-8")
    assert "moth" in text
    assert dialog.result_label.text().startswith("Wrote ")


def test_a_problem_is_said_before_the_start_and_disables_export(qtbot, tracked, tmp_path):
    services, cat = tracked
    dialog = _dialog(qtbot, services, [], "camtrap-dp")  # the trap has no coordinates
    _set_path(qtbot, dialog, tmp_path / "package")
    assert dialog.problems() and not dialog.export_button.isEnabled()
    assert any("coordinates" in p or "latitude" in p.lower() for p in dialog.problems())
    assert dialog.problems()[0] in dialog.count_label.text()
    assert "Properties…" in dialog.count_label.text()  # where to set them, in the window
    # a file format pointed at a folder that does not exist: one sentence, nothing written
    dialog.chooser.set_format("megadetector")
    _set_path(qtbot, dialog, tmp_path / "nowhere" / "md.json")
    assert dialog.problems() and not dialog.export_button.isEnabled()
    dialog.start_export()  # forced (e.g. the folder vanished after the check)
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)
    assert dialog.result_label.text() and not (tmp_path / "nowhere").exists()
