"""The Export dialog's format chooser: every format listed with what it is, the chosen format's
options shown (and only those), read back as the services' request options."""

from __future__ import annotations

import pytest

from trapgui.core.export_formats import FORMATS
from trapgui.gui.export_formats import ExportFormatChooser

pytestmark = pytest.mark.gui


def test_formats_and_their_options(qtbot, tmp_path):
    chooser = ExportFormatChooser(initial="camtrap-dp")
    qtbot.addWidget(chooser)
    chooser.resize(760, 420)
    chooser.show()
    assert chooser.list.count() == len(FORMATS)
    assert chooser.format_key() == "camtrap-dp"
    assert "TDWG" in chooser.description.text()
    visible = {k for k, (_label, editor) in chooser.option_rows.items() if editor.isVisible()}
    assert visible == {"title", "contributors", "data_license", "media_license", "media_url",
                       "sampling_design"}
    chooser.editors["title"].setText("Moths 2022")
    chooser.editors["contributors"].setPlainText("Ada Lovelace <ada@x.org>\n\nLab <l@x.org>\n")
    chooser.editors["data_license"].setCurrentText("CC0-1.0")
    chooser.editors["media_license"].setCurrentText("CC-BY-4.0")
    assert chooser.options() == {
        "title": "Moths 2022", "contributors": ["Ada Lovelace <ada@x.org>", "Lab <l@x.org>"],
        "data_license": "CC0-1.0", "media_license": "CC-BY-4.0",
        "sampling_design": "targeted"}
    chooser.grab().save(str(tmp_path / "chooser.png"))
    with qtbot.waitSignal(chooser.formatChanged) as changed:
        chooser.set_format("dwc")
    assert changed.args == ["dwc"]
    assert chooser.options() == {"title": "Moths 2022", "contributors": [
        "Ada Lovelace <ada@x.org>", "Lab <l@x.org>"], "absences": "observed"}
    chooser.editors["absences"].setCurrentIndex(1)
    assert chooser.options()["absences"] == "none"
    chooser.set_format("crops")
    assert chooser.options() == {"margin": 0.1}
    assert "folder is its taxon" in chooser.thresholds_note.text()
    chooser.set_format("detections")
    chooser.editors["excel_bom"].setChecked(True)
    assert chooser.options() == {"excel_bom": True}
    assert chooser.suggested_name("20240601-2130") == "detections-20240601-2130.csv"
    chooser.set_format("dwc")
    assert chooser.suggested_name("20240601-2130") == "darwin-core-20240601-2130.zip"
