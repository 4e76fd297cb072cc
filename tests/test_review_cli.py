"""`trapgui review ...` through the real CLI (``run_cli`` in-process, and a subprocess for the
help texts) on a real tracked catalogue."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.cli.main import run_cli
from trapgui.config.settings import load_settings, save_settings
from trapgui.db.tables import Detection, Morphospecies, Occurrence
from trapgui.pipeline.tracking_job import track_catalogue_nights

REPO = Path(__file__).resolve().parent.parent
N1 = dt.date(2022, 6, 21)
ACTIONS = ("list", "confirm", "set", "reject", "fixture", "merge", "split", "move", "add-box",
           "delete-box", "undo",
           "history", "agreement")


@pytest.fixture
def tracked(db):
    cat = make_catalogue(db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1, "moth-c": 2}, fixture=False)
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1]])
    with db.session() as s:
        rows = s.execute(select(Detection.id, Detection.occurrence_id)).all()
    ids = {}
    for det, occ in rows:
        ids.setdefault(cat.truth[det], occ)
    return cat, ids


def cli(capsys, *argv):
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _occ(db, occ_id):
    with db.session() as s:
        return s.execute(select(Occurrence).where(Occurrence.id == occ_id)).scalars().one()


def test_every_action_has_help(capsys):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "trapgui", "review", "--help"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and all(a in out.stdout for a in ACTIONS)
    for action in ACTIONS:
        with pytest.raises(SystemExit) as exit_:
            run_cli(["review", action, "--help"])
        text = capsys.readouterr().out
        assert exit_.value.code == 0
        assert f"trapgui review {action}" in text and len(text) > 200, text


def test_set_creates_a_morphospecies_and_list_shows_both_labels(tracked, capsys):
    ids, db = tracked[1], tracked[0].db
    path = str(db.path)
    a, b = ids["moth-a"], ids["moth-b"]
    code, out, err = cli(capsys, "--db", path, "review", "set", str(a), "--label",
                         "Noctuidae sp. A", "--by", "J. Smith")
    assert code == 0, err
    assert "1 occurrence labelled 'Noctuidae sp. A'" in out and "review undo" in out
    row = _occ(db, a)
    assert (row.review_label, row.review_rank, row.identified_by, row.label) == \
        ("Noctuidae sp. A", "morphospecies", "J. Smith", "moth")
    with db.session() as s:
        assert s.execute(select(Morphospecies.name, Morphospecies.created_by)).all() == [
            ("Noctuidae sp. A", "J. Smith")]
    # the settings' reviewer name is the default
    settings_file = Path(os.environ["TRAPGUI_CONFIG_DIR"]) / "settings.json"
    settings = load_settings(settings_file)
    settings.reviewer_name = "K. Lee"
    save_settings(settings, settings_file)
    code, out, err = cli(capsys, "--db", path, "review", "confirm", str(b))
    assert code == 0, err
    assert _occ(db, b).identified_by == "K. Lee" and _occ(db, b).review_state == "confirmed"

    code, out, err = cli(capsys, "--db", path, "review", "list", "--night", "2022-06-21")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["OCCURRENCE", "NIGHT"] and len(lines) == 4
    mine = next(line for line in lines if line.startswith(str(a)))
    assert "moth" in mine and "relabelled" in mine and "Noctuidae sp. A" in mine
    code, out, _ = cli(capsys, "--db", path, "review", "list", "--unreviewed", "--csv")
    rows = list(csv.reader(out.splitlines()))
    assert rows[0][0] == "occurrence" and [r[0] for r in rows[1:]] == [str(ids["moth-c"])]


def test_reject_merge_split_undo_and_agreement(tracked, capsys, tmp_path):
    ids, db = tracked[1], tracked[0].db
    path = str(db.path)
    a, b, c = ids["moth-a"], ids["moth-b"], ids["moth-c"]
    assert cli(capsys, "--db", path, "review", "reject", str(c))[0] == 0
    assert _occ(db, c).review_state == "rejected"
    code, out, err = cli(capsys, "--db", path, "review", "merge", str(a), str(b))
    assert code == 0, err
    assert "2 occurrences merged" in out
    assert _occ(db, a).n_detections == 12
    code, out, err = cli(capsys, "--db", path, "review", "split", str(a), "--at-frame", "7")
    assert code == 0, err
    assert "6 detections became occurrence" in out
    code, _, err = cli(capsys, "--db", path, "review", "split", str(a), "--at-frame", "99")
    assert code != 0 and "there is no frame 99" in err
    code, out, err = cli(capsys, "--db", path, "review", "undo")
    assert code == 0 and out.startswith("Undone: occurrence")
    code, out, err = cli(capsys, "--db", path, "review", "undo")
    assert code == 0 and "merged" in out and _occ(db, b).merged_into is None
    assert _occ(db, a).n_detections == 6 and _occ(db, b).n_detections == 6
    code, out, _ = cli(capsys, "--db", path, "review", "history")
    assert code == 0 and "(undone)" in out and "rejected" in out

    # agreement: a confirmed, b changed, c rejected
    cli(capsys, "--db", path, "review", "confirm", str(a))
    cli(capsys, "--db", path, "review", "set", str(b), "--label", "Lepidoptera")
    assert _occ(db, b).review_rank == "order"  # an insect order is known, no morphospecies
    with db.session() as s:
        assert s.execute(select(Morphospecies)).first() is None
    out_csv = tmp_path / "agreement.csv"
    code, out, err = cli(capsys, "--db", path, "review", "agreement", "--out", str(out_csv))
    assert code == 0, err
    assert "moth" in out and "33.3%" in out and "moth -> Lepidoptera: 1" in out
    rows = list(csv.reader(out_csv.read_text().splitlines()))
    assert rows[1] == ["taxon", "moth", "", "3", "1", "1", "1", "0.3333"]
    assert ["confusion", "moth", "(not an insect)", "1", "", "", "", ""] in rows


def test_bad_input_is_one_sentence(tracked, capsys, tmp_path):
    ids, db = tracked[1], tracked[0].db
    path = str(db.path)
    for argv, text in (
            (["set", "424242", "--label", "x"], "Occurrence 424242 is not in the catalogue"),
            (["set", str(ids["moth-a"])], "Give the occurrences and --label"),
            (["confirm", "--label", "moth"], "needs the night"),
            (["list", "--night", "2030-01-01"], "No night of the catalogue matches"),
            (["move", "1", str(ids["moth-a"])], "already belongs"),
            (["agreement", "--out", str(tmp_path)], "is a folder")):
        code, out, err = cli(capsys, "--db", path, "review", *argv)
        assert code != 0, argv
        assert text in err and "Traceback" not in err, (argv, err)
    bad = tmp_path / "labels.csv"
    bad.write_text("occurrence_id,label\n1,Noctua pronuba\nabc,x\n")
    code, _, err = cli(capsys, "--db", path, "review", "set", "--from-csv", str(bad))
    assert code != 0 and "line 3: 'abc' is not an occurrence id" in err
    assert _occ(db, 1).review_state is None  # nothing applied before the file was checked
    good = tmp_path / "good.csv"
    good.write_text(f"occurrence_id,label,rank\n{ids['moth-a']},Noctua pronuba,species\n"
                    f"{ids['moth-b']},Noctuidae sp. B,\n")
    code, out, err = cli(capsys, "--db", path, "review", "set", "--from-csv", str(good))
    assert code == 0, err
    assert "2 occurrences labelled" in out
    assert _occ(db, ids["moth-b"]).review_rank == "morphospecies"


def test_add_and_delete_a_box(tracked, capsys):
    ids, db = tracked[1], tracked[0].db
    path = str(db.path)
    with db.session() as s:
        from trapgui.db.tables import Image

        image = s.execute(select(Image.id).order_by(Image.id)).scalars().first()
        det = s.execute(select(Detection.id).where(Detection.occurrence_id == ids["moth-c"])
                        .order_by(Detection.id)).scalars().first()
    code, out, err = cli(capsys, "--db", path, "review", "add-box", str(image), "--box",
                         "1500,600,1560,660", "--by", "J. Smith")
    assert code == 0, err
    assert "a box drawn by a person" in out
    with pytest.raises(SystemExit) as exit_:  # argparse's own usage error, exit code 2
        cli(capsys, "--db", path, "review", "add-box", str(image), "--box", "1,2,3")
    assert exit_.value.code == 2 and "is not a box like" in capsys.readouterr().err
    code, out, err = cli(capsys, "--db", path, "review", "delete-box", str(det))
    assert code == 0, err
    assert f"detection {det} deleted as a false box" in out
    assert _occ(db, ids["moth-c"]).n_detections == 5
    code, out, _ = cli(capsys, "--db", path, "review", "undo")
    assert code == 0 and _occ(db, ids["moth-c"]).n_detections == 6
