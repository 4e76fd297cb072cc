"""One trap per site subfolder: which subfolders are sites (real files, real names and EXIF),
scanning and splitting through the real CLI, and results that follow their images when a
folder catalogued as one trap is split (real SQLite catalogue)."""

from __future__ import annotations

import csv
import shutil
import sqlite3

import pytest
from sqlalchemy import func, select

from tests.export_fixtures import build
from tests.image_files import make_jpeg
from trapgui.core.errors import UserInputError
from trapgui.db.catalogue_queries import nights_table
from trapgui.db.tables import Deployment, Detection, Image, Occurrence
from trapgui.scan.site_folders import find_site_folders, is_time_name
from trapgui.scan.site_scan import plan_traps, scan_traps

SITES = ["DSLR", "panama", "sequential", "vermont"]
IMAGES = {"DSLR": 2, "panama": 4, "sequential": 5, "vermont": 3}


def cli(capsys, *argv):
    from trapgui.cli.main import run_cli

    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _traps(db) -> dict[str, int]:
    """Trap name -> images (missing ones included)."""
    with db.session() as s:
        return dict(s.execute(select(Deployment.name, func.count(Image.id)).outerjoin(
            Image, Image.deployment_id == Deployment.id).group_by(Deployment.id)).all())


@pytest.mark.parametrize("name,timely", [
    ("2022_07_18", True), ("2022-07-18", True), ("20220718", True), ("18.07.2022", True),
    ("2022-07", True), ("2022", True), ("night3", True), ("night_2022-07-18", True),
    ("vermont", False), ("DSLR", False), ("trap-2", False), ("01", False),
    ("2022_vermont", False), ("nights", False), ("1985", False)])
def test_time_names(name, timely):
    assert is_time_name(name) is timely


def test_the_shared_folders_are_four_sites(small_trap_images):
    layout = find_site_folders(small_trap_images)
    assert layout.site_names == SITES  # DSLR: no time in its names, found in its EXIF
    assert {s.name: s.images for s in layout.sites} == IMAGES
    assert layout.splits and layout.loose_images == 0 and not layout.others
    assert layout.describe() == "4 trap sites (DSLR, panama, sequential, vermont)"


def test_night_folders_of_one_trap_are_not_sites(tmp_path):
    trap = tmp_path / "trap"
    for night, hour in (("2022_07_18", "2022071822"), ("2022_07_19", "2022071923"),
                        ("2022-07-20", "2022072021")):
        for i in range(3):
            make_jpeg(trap / night / f"{hour}{i:02d}00-snapshot.jpg")
    layout = find_site_folders(trap)
    assert layout.sites == () and [o.name for o in layout.others] == [
        "2022-07-20", "2022_07_18", "2022_07_19"]
    assert not layout.splits


def test_sites_with_nightly_subfolders_and_undated_folders(tmp_path):
    root = tmp_path / "season"
    for site in ("north", "south"):  # DSLR names, times only in EXIF ... or in no file at all
        make_jpeg(root / site / "2022_07_18" / "DSC_0001.JPG")
        make_jpeg(root / site / "2022_07_19" / "DSC_0002.JPG")
    make_jpeg(root / "east" / "DSC_0003.JPG", original="2022:07:18 22:00:00")
    make_jpeg(root / "east" / "DSC_0004.JPG", original="2022:07:18 22:02:00")
    make_jpeg(root / "kept" / "20220718221500-best.jpg")  # one photo kept aside: no trap
    make_jpeg(root / "rejects" / "blurred.jpg")  # no time anywhere: not a site
    make_jpeg(root / ".thumbnails" / "20220718220000.jpg")  # hidden: never looked at
    make_jpeg(root / "20220718230000-loose.jpg")
    layout = find_site_folders(root)
    assert layout.site_names == ["east", "north", "south"]
    assert [o.name for o in layout.others] == ["kept", "rejects"]
    assert layout.loose_images == 1 and layout.images_outside_sites == 3


def test_cli_auto_makes_one_trap_per_site_and_keeps_loose_images(capsys, db, tmp_path,
                                                                 small_trap_images):
    root = tmp_path / "moths"
    shutil.copytree(small_trap_images, root)
    make_jpeg(root / "20220801210000-loose.jpg")
    make_jpeg(root / "2022_08_02" / "20220802210000-a.jpg")  # a night of the folder's own trap
    code, out, err = cli(capsys, "--db", str(db.path), "scan", str(root))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (f"{root}: one trap per site subfolder: 5 traps ('DSLR', 'panama', "
                        "'sequential', 'vermont', 'moths')")
    assert any(line.startswith(f"{root / 'vermont'}: 3 images in 2 nights") for line in lines)
    assert any(line.startswith(f"{root}: 2 images in 2 nights") for line in lines)
    assert _traps(db) == {**IMAGES, "moths": 2}
    # scanning again changes nothing and keeps the split
    code, out, _ = cli(capsys, "--db", str(db.path), "scan", str(root))
    assert code == 0 and "(0 new, 0 changed, 0 back, 0 missing, 2 unchanged)" in out
    assert _traps(db) == {**IMAGES, "moths": 2}
    # "one" cannot swallow traps of their own: they stay, and the line says so
    code, out, _ = cli(capsys, "--db", str(db.path), "scan", str(root), "--traps", "one")
    assert "left out: DSLR/, panama/, sequential/, vermont/ (traps of their own)" in out
    assert _traps(db) == {**IMAGES, "moths": 2}


def test_cli_one_and_a_catalogued_one_trap_folder_is_never_split_silently(capsys, db, tmp_path,
                                                                          small_trap_images):
    root = tmp_path / "moths"
    shutil.copytree(small_trap_images, root)
    assert cli(capsys, "--db", str(db.path), "scan", str(root), "--traps", "one")[0] == 0
    assert _traps(db) == {"moths": 14}
    code, out, _ = cli(capsys, "--db", str(db.path), "scan", str(root))  # auto
    assert code == 0 and _traps(db) == {"moths": 14}
    assert (f"note: moths is one trap in the catalogue, though it holds 4 trap sites (DSLR, "
            f"panama, sequential, vermont): it stays one trap; `trapgui scan --traps "
            f"subfolders {root}` makes one trap of each") in out
    code, out, _ = cli(capsys, "--db", str(db.path), "scan", str(root), "--traps", "subfolders")
    assert code == 0 and _traps(db) == IMAGES  # the emptied folder trap is gone
    assert "taken over from the trap 'moths': 3 images" in out
    assert "The trap 'moths' held only the images of its site subfolders: it is removed" in out


def test_splitting_moves_results_and_reviews_with_the_images(db, tmp_path, small_trap_images,
                                                             capsys):
    root = tmp_path / "moths"
    shutil.copytree(small_trap_images, root)
    cat = build(db, root, folders=("",), metadata=False)  # one trap, processed and tracked
    with db.write_session() as s:
        reviewed = s.execute(select(Occurrence.id).join(
            Image, Image.id == Occurrence.first_image_id).where(
            Image.rel_path.like("panama/%"))).scalars().first()
        s.execute(Occurrence.__table__.update().where(Occurrence.id == reviewed).values(
            review_state="relabelled", review_label="Noctua comes", pinned=True))
    per_folder = _detections_per_folder(db)
    occurrences = _count(db, Occurrence)

    traps = scan_traps(db, plan_traps(db, root, "subfolders"))

    assert [r.name for r in traps.reports] == SITES
    assert _traps(db) == IMAGES
    with db.session() as s:
        for name in SITES:
            dep = s.execute(select(Deployment.id).where(Deployment.name == name)).scalar_one()
            got = s.execute(select(func.count()).select_from(Detection).join(Image).where(
                Image.deployment_id == dep)).scalar_one()
            assert got == per_folder[name]
            # every individual is in the trap (and a night) of its detections' images
            bad = s.execute(select(func.count()).select_from(Detection).join(Image).join(
                Occurrence, Occurrence.id == Detection.occurrence_id).where(
                Image.deployment_id == dep, (Occurrence.deployment_id != dep)
                | (Occurrence.night_id != Image.night_id))).scalar_one()
            assert bad == 0
        assert s.execute(select(Occurrence.review_label).where(
            Occurrence.id == reviewed)).scalar_one() == "Noctua comes"
    assert _count(db, Occurrence) == occurrences and _count(db, Detection) == sum(
        per_folder.values())
    with sqlite3.connect(db.path) as con:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    # the export says each detection's own trap
    out = tmp_path / "d.csv"
    code, _, err = cli(capsys, "--db", str(db.path), "export", "detections", "--out", str(out),
                       "--min-score", "0")
    assert code == 0, err
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["trap"] for r in rows} == set(SITES)
    for r in rows:
        assert r["trap_folder"] == str(root / r["trap"])
    assert {r["trap"]: sum(1 for x in rows if x["trap"] == r["trap"]) for r in rows} == per_folder
    assert {(r.deployment_name, r.images) for r in nights_table(db)} >= {("panama", 4)}
    assert cat.pipeline_id


def test_an_individual_across_two_sites_refuses_the_split_and_changes_nothing(
        db, tmp_path, small_trap_images, capsys):
    root = tmp_path / "moths"
    shutil.copytree(small_trap_images, root)
    build(db, root, folders=("",), metadata=False)
    with db.write_session() as s:  # a tracking that linked two cameras' images
        ids = {}
        for site in ("vermont", "panama"):
            ids[site] = s.execute(select(Detection.id, Detection.occurrence_id).join(Image).where(
                Image.rel_path.like(f"{site}/%"), Detection.occurrence_id.is_not(None))).first()
        s.execute(Detection.__table__.update().where(Detection.id == ids["panama"].id).values(
            occurrence_id=ids["vermont"].occurrence_id))
    before = _traps(db)
    with pytest.raises(UserInputError, match="tracked across images of its site subfolders"):
        scan_traps(db, plan_traps(db, root, "subfolders"))
    assert _traps(db) == before == {"moths": 14}
    code, _, err = cli(capsys, "--db", str(db.path), "scan", str(root), "--traps", "subfolders")
    assert code == 2 and "nothing was changed" in err and "Traceback" not in err


def _count(db, table) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def _detections_per_folder(db) -> dict[str, int]:
    with db.session() as s:
        rels = s.execute(select(Image.rel_path).join(Detection)).scalars().all()
    out: dict[str, int] = {}
    for rel in rels:
        out[rel.split("/")[0]] = out.get(rel.split("/")[0], 0) + 1
    return out
