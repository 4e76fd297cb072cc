"""Crops: the best crop of every individual, cut from the original photograph, in a folder per
taxon, with names and an index that map back to the catalogue."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from tests import export_fixtures as ef
from trapgui.core.errors import UserInputError
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.tables import Occurrence
from trapgui.export.common import ExportRun, safe_name
from trapgui.export.crops import NOT_IDENTIFIED_FOLDER, export_crops


def read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def catalogue(db, trap_copy):
    cat = ef.build(db, trap_copy)
    cat.root = trap_copy
    return cat


def export(cat, out, margin=0.1, thresholds=Thresholds()):
    return export_crops(ExportRun.start(cat.db, ExportScope(), thresholds), out, margin)


def test_folders_names_and_index(catalogue, tmp_path):
    out = tmp_path / "crops"
    result = export(catalogue, out)
    assert result.rows == {"crops": 6}  # A and B on each of 3 nights; no fixture, no faint box
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["Noctua pronuba",
                                                                   NOT_IDENTIFIED_FOLDER]
    index = read(out / "index.csv")
    assert len(index) == 6
    with catalogue.db.session() as s:
        labels = dict(s.execute(select(Occurrence.id, Occurrence.label)).all())
    for row in index:
        path = out / row["file"]
        assert path.is_file()
        occ = int(row["occurrence_id"])
        assert path.name.endswith(f"_occ{occ}.jpg")  # the name maps back to the occurrence
        assert path.name.startswith(f"{row['trap']}_{row['night']}_")
        if row["taxon"]:
            assert path.parent.name == row["taxon"] == labels[occ]
        else:
            assert path.parent.name == NOT_IDENTIFIED_FOLDER and labels[occ] == "Xestia c-nigrum"
            assert row["machine_label"] == "Xestia c-nigrum" and row["machine_score"] == "0.3"
    first = next(r for r in index if r["file"].startswith("Noctua pronuba/vermont_2022-06-21"))
    assert first["file"] == f"Noctua pronuba/vermont_2022-06-21_0004_occ{first['occurrence_id']}.jpg"
    about = json.loads((out / "about.json").read_text())
    assert about["margin"] == 0.1 and about["thresholds"]["label_score"] == 0.5


def test_crops_are_cut_from_the_original(catalogue, tmp_path):
    out = tmp_path / "crops"
    export(catalogue, out, margin=0.0)
    row = next(r for r in read(out / "index.csv") if r["taxon"] == "Noctua pronuba")
    crop = PILImage.open(out / row["file"])
    assert crop.size == (200, 100)  # the box in original pixels, not a thumbnail's
    trap = catalogue.root / row["trap"]
    with PILImage.open(trap / row["image"]) as original:
        expected = np.asarray(original.convert("RGB").crop((100, 50, 300, 150)), dtype=float)
    got = np.asarray(crop.convert("RGB"), dtype=float)
    assert np.abs(got - expected).mean() < 3.0  # JPEG quality 95 of the same pixels
    export(catalogue, out, margin=0.5)
    row = next(r for r in read(out / "index.csv") if r["taxon"] == "Noctua pronuba")
    assert (row["crop_x1"], row["crop_y1"], row["crop_x2"], row["crop_y2"]) == (
        "0", "0", "400", "200")  # 100 px and 50 px more on each side, clipped at the border
    assert PILImage.open(out / row["file"]).size == (400, 200)


def test_thresholds_choose_the_folder(catalogue, tmp_path):
    out = tmp_path / "crops"
    export(catalogue, out, thresholds=Thresholds(0.5, 0.2))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["Noctua pronuba",
                                                                   "Xestia c-nigrum"]


def test_unreadable_source_images_are_reported(catalogue, tmp_path):
    (catalogue.root / "vermont" / "20220622000459-108-snapshot.jpg").write_bytes(b"broken")
    out = tmp_path / "crops"
    result = export(catalogue, out)
    assert result.rows == {"crops": 4}
    assert any("could not be cut" in n for n in result.notes)


def test_bad_input(catalogue, tmp_path):
    with pytest.raises(UserInputError, match="margin"):
        export(catalogue, tmp_path / "c", margin=5)
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        export(catalogue, tmp_path / "f")


def test_safe_names():
    assert safe_name('Noctua "pronuba"/x: y?') == "Noctua _pronuba_x_ y_"
    assert safe_name("CON") == "_CON" and safe_name(" . ") == "unnamed"
    assert safe_name("Épinette  ñ") == "Épinette ñ"
