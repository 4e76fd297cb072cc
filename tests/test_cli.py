"""The headless CLI as a user meets it: help, scan, nights, export, and clear errors with
non-zero exit codes (never a traceback)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trapgui.app import main
from trapgui.cli.main import wants_gui
from trapgui.cli.scan_cmd import scan_progress
from tests.image_files import make_jpeg

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, words", [
    (["--help"], ["scan", "nights", "export", "--db", "--reset-db"]),
    (["scan", "--help"], ["FOLDER", "--cutoff-hour", "missing"]),
    (["nights", "--help"], ["--trap", "undated"]),
    (["export", "detections", "--help"], ["--out", "--night", "--min-score", "csv-columns.md"]),
    (["models", "import", "--help"], ["weights file copied from another computer", "model key", "--labels"]),
    (["models", "verify", "--help"], ["checksum", "Exit code"]),
    (["models", "remove", "--help"], ["Delete", "model key"]),
])
def test_help(capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at any word
    for word in words:
        assert word in out


def test_no_arguments_means_the_gui():
    assert wants_gui([]) and wants_gui(["--smoke"])
    assert not wants_gui(["scan", "x"]) and not wants_gui(["--help"])


def test_scan_then_nights_table(capsys, small_trap_images):
    code, out, err = run(capsys, "scan", str(small_trap_images / "vermont"),
                         str(small_trap_images / "panama"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{small_trap_images / 'vermont'}: 3 images in 2 nights (3 new")
    assert lines[1].startswith(f"{small_trap_images / 'panama'}: 4 images in 1 night (4 new")
    code, out, _ = run(capsys, "scan", str(small_trap_images / "vermont"))
    assert code == 0 and "(0 new, 0 changed, 0 back, 0 missing, 3 unchanged)" in out

    code, out, err = run(capsys, "nights")
    assert code == 0, err
    table = out.splitlines()
    assert table[0].split() == ["TRAP", "NIGHT", "FIRST", "LAST", "IMAGES", "PROCESSED",
                                "FAILED", "UNREADABLE", "WAITING", "DETECTIONS", "MISSING"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["panama", "2023-11-10"], ["vermont", "2022-06-21"], ["vermont", "2022-06-22"]]
    assert [line.split()[6] for line in table[1:]] == ["4", "1", "2"]  # images
    assert len({len(line) for line in table}) == 1  # aligned: right-aligned last column
    code, out, _ = run(capsys, "nights", "--trap", str(small_trap_images / "panama"))
    assert code == 0 and len(out.splitlines()) == 2


def test_scan_reports_unreadable_and_undated_files(capsys, tmp_path):
    trap = tmp_path / "trap with spaces é"
    make_jpeg(trap / "20220622220000 good.jpg")
    (trap / "20220622220100 empty.jpg").write_bytes(b"")
    os.utime(make_jpeg(trap / "no time.jpg"), (0, 0))
    os.utime(make_jpeg(trap / "file time only.jpg"), (1609502400, 1609502400))  # 2021-01-01
    code, out, err = run(capsys, "scan", str(trap))
    assert code == 0, err
    assert "1 unreadable, 1 undated" in out
    # a night built from file times is a guess: say so (copying an SD card changes them)
    assert "warning: 1 image without a time in EXIF or the file name" in out
    assert "unreadable: 20220622220100 empty.jpg: empty file (0 bytes)" in out
    code, out, _ = run(capsys, "nights")
    assert "undated" in out.splitlines()[-1]


def test_scan_errors_are_clear_and_other_folders_still_scanned(capsys, tmp_path,
                                                                small_trap_images):
    (tmp_path / "empty").mkdir()
    make_jpeg(tmp_path / "file.jpg")
    code, out, err = run(capsys, "scan", str(tmp_path / "nope"), str(tmp_path / "empty"),
                         str(tmp_path / "file.jpg"), str(small_trap_images / "DSLR"))
    assert code == 2
    assert "does not exist" in err and "No images found in" in err
    assert "is a file, not a folder" in err and "Traceback" not in err
    assert "2 images in 1 night" in out  # the good folder was still scanned


def test_bad_arguments(capsys, tmp_path):
    for argv, message in [
        (["scan", str(tmp_path), "--cutoff-hour", "25"], "from 0 to 23"),
        (["export", "detections", "--out", "x.csv", "--night", "22/06/2022"], "not a date"),
        (["export", "detections", "--out", "x.csv", "--min-score", "2"], "from 0 to 1"),
        (["export", "detections"], "--out"),
        (["scan"], "FOLDER"),
        (["frobnicate"], "invalid choice"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert message in err
        assert err.count("usage:") == 1  # reported once, not by the GUI-or-CLI probe as well


def test_nights_on_an_empty_catalogue_and_unknown_trap(capsys, tmp_path):
    code, out, _ = run(capsys, "nights")
    assert code == 0 and "trapgui scan FOLDER" in out
    code, _, err = run(capsys, "nights", "--trap", str(tmp_path))
    assert code == 2 and "is not in the catalogue" in err and "trapgui scan" in err


def test_export_detections(capsys, tmp_path, small_trap_images):
    assert run(capsys, "scan", str(small_trap_images / "vermont"))[0] == 0
    out_file = tmp_path / "out.csv"
    code, out, err = run(capsys, "export", "detections", "--out", str(out_file),
                         "--night", "2022-06-21", "--trap", str(small_trap_images / "vermont"),
                         "--min-score", "0.5")
    assert code == 0, err
    assert f"Wrote 0 detections to {out_file}" in out and "process the images first" in err
    with open(out_file, newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh))[:3] == ["trap", "trap_folder", "night"]
    code, _, err = run(capsys, "export", "detections", "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_database_problems_through_the_cli(capsys, tmp_path, small_trap_images):
    bad = tmp_path / "catalogue.sqlite3"
    bad.write_bytes(b"not a database at all" * 100)
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    code, _, err = run(capsys, "--db", str(bad), "nights")
    assert code == 3 and "cannot be opened" in err and "--reset-db" in err
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == digest
    code, out, err = run(capsys, "--db", str(bad), "--reset-db", "scan",
                         str(small_trap_images / "DSLR"))
    assert code == 0 and "moved aside to" in err
    moved = list(tmp_path.glob("catalogue.sqlite3.bad-*"))
    assert len(moved) == 1 and hashlib.sha256(moved[0].read_bytes()).hexdigest() == digest


def test_real_process_exit_code_and_message(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "trapgui", "scan", str(tmp_path / "gone")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("trapgui: error: The folder") and "Traceback" not in proc.stderr


def test_progress_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    line, show = scan_progress(stream)
    show("trap", "reading", 5, 10)
    show("trap", "saving", 10, 10)
    line.close(clear=True)
    text = stream.getvalue()
    assert "\rtrap: reading" in text and "5/10" in text
    assert "\rtrap: saving" in text and "10/10" in text
    assert "\n" not in text  # cleared in place: the summary line follows on the same row
    silent = io.StringIO()
    line, show = scan_progress(silent)
    show("trap", "reading", 1, 2)
    assert silent.getvalue() == ""


def test_traps_with_the_same_folder_name_are_told_apart(capsys, tmp_path):
    for site in ("north", "south"):
        make_jpeg(tmp_path / site / "DCIM" / "20220622220000.jpg")
        code, out, _ = run(capsys, "scan", str(tmp_path / site / "DCIM"))
        assert code == 0 and ": 1 image in 1 night (1 new" in out
    code, out, _ = run(capsys, "nights")
    first_column = [line.split()[0] for line in out.splitlines()[1:]]
    assert first_column == sorted([str(tmp_path / "north" / "DCIM"),
                                   str(tmp_path / "south" / "DCIM")])
