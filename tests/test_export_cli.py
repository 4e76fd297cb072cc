"""`trapgui export FORMAT --out PATH` end to end: images scanned and processed by the real engine
(built-in detector, CPU), individuals made from its detections as the tracker would, then every
format through the CLI, with clear errors for bad input."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest
from sqlalchemy import insert, select, update

from tests.camtrap_validation import no_network, validate
from tests.pipeline_helpers import make_tiny_trap
from trapgui.app import main
from trapgui.db import open_database
from trapgui.db.tables import Detection, Image, Occurrence

__all__ = ["no_network"]
pytestmark = pytest.mark.usefixtures("no_network")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """Two tiny traps processed once for the module (the engine is the slow part)."""
    root = tmp_path_factory.mktemp("cli-export")
    traps = {name: make_tiny_trap(root / name, side=320, folders=(name,))
             for name in ("vermont", "panama")}
    db_path = root / "catalogue.sqlite3"
    import contextlib
    import io

    for folder in traps.values():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["--db", str(db_path), "scan", str(folder)]) == 0
            assert main(["--db", str(db_path), "process", str(folder), "--detector", "builtin",
                         "--classifier", "none", "--device", "cpu", "--quiet"]) == 0
    _track_each_detection(db_path)
    return db_path, traps


def _track_each_detection(db_path) -> None:
    """One individual per detection (the tracker's job, not built yet); the largest box of each
    night labelled as a species, so counts have a taxon."""
    db = open_database(db_path)
    try:
        with db.session() as s:
            dets = s.execute(select(Detection.id, Detection.score, Detection.x1, Detection.x2,
                                    Image.deployment_id, Image.night_id, Image.captured_at,
                                    Image.id.label("image_id"))
                             .join(Image, Image.id == Detection.image_id)).all()
        assert dets, "the built-in detector found nothing in the shared images"
        with db.write_session() as s:
            for d in dets:
                big = (d.x2 - d.x1) > 30
                occ = s.execute(insert(Occurrence).values(
                    pipeline_id=1, deployment_id=d.deployment_id, night_id=d.night_id,
                    first_image_id=d.image_id, last_image_id=d.image_id,
                    first_seen=d.captured_at, last_seen=d.captured_at, n_detections=1,
                    best_detection_id=d.id, label="Noctua pronuba" if big else None,
                    label_rank="species" if big else None, label_score=0.9 if big else None)
                    .returning(Occurrence.id)).scalar_one()
                s.execute(update(Detection).where(Detection.id == d.id)
                          .values(occurrence_id=occ))
    finally:
        db.close()


def test_every_format_through_the_cli(capsys, processed, tmp_path):
    db_path, traps = processed
    db = ("--db", str(db_path))
    code, _, err = run(capsys, *db, "export", "camtrap-dp", "--out", str(tmp_path / "cdp"))
    assert code == 2 and "Camtrap DP needs coordinates and exact times" in err
    assert "trapgui trap set" in err and "Traceback" not in err
    assert run(capsys, *db, "trap", "set", "vermont", "--latitude", "44.4759", "--longitude",
               "-73.2121", "--timezone", "America/New_York")[0] == 0
    assert run(capsys, *db, "trap", "set", "panama", "--latitude", "9.15", "--longitude",
               "-79.85", "--timezone=-05:00")[0] == 0
    outputs = {"detections": "d.csv", "occurrences": "o.csv", "matrix": "m.csv",
               "summary": "s.csv", "camtrap-dp": "cdp", "dwc": "dwc.zip",
               "megadetector": "md.json", "crops": "crops"}
    for fmt, name in outputs.items():
        code, out, err = run(capsys, *db, "export", fmt, "--out", str(tmp_path / name))
        assert code == 0, (fmt, err)
        assert f"to {tmp_path / name}" in out
        if fmt not in ("camtrap-dp", "crops"):
            assert (tmp_path / name).with_name(f"{(tmp_path / name).stem}-about.json").is_file()
    assert validate(tmp_path / "cdp") == []
    package = json.loads((tmp_path / "cdp" / "datapackage.json").read_text())
    assert package["trapgui"]["pipeline"]["config"]["detector"] == "builtin"
    with zipfile.ZipFile(tmp_path / "dwc.zip") as zf:
        assert set(zf.namelist()) == {"event.csv", "occurrence.csv", "meta.xml", "eml.xml"}
    md = json.loads((tmp_path / "md.json").read_text())
    assert md["info"]["format_version"] == "1.6" and md["images"]
    with open(tmp_path / "m.csv", newline="", encoding="utf-8") as fh:
        matrix = list(csv.DictReader(fh))
    with open(tmp_path / "o.csv", newline="", encoding="utf-8") as fh:
        occurrences = list(csv.DictReader(fh))
    assert sum(int(r["individuals"]) for r in matrix) <= len(occurrences)
    assert (tmp_path / "crops" / "index.csv").is_file()


def test_thresholds_and_filters(capsys, processed, tmp_path):
    db_path, traps = processed
    db = ("--db", str(db_path))
    out = tmp_path / "m.csv"
    code, _, err = run(capsys, *db, "export", "matrix", "--out", str(out), "--trap", "vermont",
                       "--min-score", "0.0", "--min-class-score", "0.95")
    assert code == 0, err
    about = json.loads((tmp_path / "m-about.json").read_text())
    assert about["thresholds"] == {"detection_score": 0.0, "label_score": 0.95}
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["trap"] for r in rows} == {"vermont"}
    assert "Noctua pronuba" not in rows[0]  # 0.9 is below 0.95: not identified
    # the detections export keeps its options
    code, out_text, err = run(capsys, *db, "export", "detections", "--out",
                              str(tmp_path / "d.csv"), "--night", "2022-06-22", "--trap",
                              str(traps["vermont"]), "--min-score", "0.1", "--excel",
                              "--pipeline", "builtin")
    assert code == 0, err
    assert (tmp_path / "d.csv").read_bytes().startswith(b"\xef\xbb\xbftrap,")


def test_bad_input_is_one_sentence(capsys, processed, tmp_path):
    db_path, _ = processed
    db = ("--db", str(db_path))
    for argv, message in [
        (("export", "dwc", "--out", str(tmp_path / "no" / "x.zip")), "does not exist"),
        (("export", "megadetector", "--out", str(tmp_path)), "is a folder"),
        (("export", "matrix", "--out", str(tmp_path / "m.csv"), "--trap", "atlantis"),
         "No trap in the catalogue is called 'atlantis'"),
        (("export", "matrix", "--out", str(tmp_path / "m.csv"), "--pipeline", "nope"),
         "No model configuration is called 'nope'"),
        (("export", "camtrap-dp", "--out", str(tmp_path / "c"), "--data-license", "CC0-1.0"),
         "or neither"),
        (("export", "dwc", "--out", str(tmp_path / "d.zip"), "--contributor", "<x@y>"),
         "is not a contributor"),
    ]:
        code, _, err = run(capsys, *db, *argv)
        assert code == 2, (argv, err)
        assert message in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["export", "crops", "--out", "x", "--margin", "wide"])
    assert "invalid float value" in capsys.readouterr().err


def test_help_for_every_format(capsys):
    for fmt in ("detections", "occurrences", "matrix", "summary", "camtrap-dp", "dwc",
                "megadetector", "crops"):
        with pytest.raises(SystemExit):
            main(["export", fmt, "--help"])
        out = capsys.readouterr().out
        assert "--out" in out and "--trap" in out and "--night" in out and "--pipeline" in out
    with pytest.raises(SystemExit):
        main(["export", "dwc", "--help"])
    assert "--absences" in capsys.readouterr().out
