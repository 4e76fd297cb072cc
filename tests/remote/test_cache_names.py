"""Remote images are cached under names that never collide (two ids, one file, two downloads
racing on one .part file) and stay recognisable in the viewer."""

from __future__ import annotations

import random
import string

import pytest
from sqlalchemy import select

from trapgui.db.tables import Image
from trapgui.remote.local_images import image_filename

pytestmark = pytest.mark.timeout(120)

URL = "https://s3.example.org/bucket/deployment-7/{}?X-Amz-Signature=abc"


def test_ids_that_used_to_share_a_file_do_not():
    pairs = [
        ("a/b", "a_b"),
        ("a b", "a_b"),
        ("x" * 100 + "1", "x" * 100 + "2"),  # cut at 100 characters before
        ("IMG1", "img1"),  # one file on a case-insensitive disk (Windows, macOS)
        ("..", "_"),
        ("", "image"),
    ]
    for a, b in pairs:
        url = "https://s.example.org/images/same-name.jpg"
        name_a, name_b = image_filename(a, url), image_filename(b, url)
        assert name_a.lower() != name_b.lower(), (a, b, name_a)
        # and with the id as the URL's file name, as the test server does
        assert image_filename(a, URL.format(a + ".jpg")).lower() != \
            image_filename(b, URL.format(b + ".jpg")).lower(), (a, b)


def test_names_are_readable_and_safe():
    assert image_filename("img00", "http://h/images/img00.jpg?sig=1") == "img00.jpg"
    assert image_filename("4711", URL.format("20220622200400-snapshot.JPG")) == \
        "20220622200400-snapshot [4711].jpg"
    assert image_filename("4711", "https://h/api/images/4711") == "4711.jpg"
    name = image_filename("../../etc/passwd", "https://h/x/..%2F..%2Fetc%2Fpasswd")
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert name.endswith(".jpg")
    assert image_filename("con", "https://h/images/con.png") == "con [con].png"  # Windows
    long = image_filename("é" * 300, "https://h/" + "é" * 300 + ".tif")
    assert len(long.encode()) < 200 and long.endswith(".tif")


def test_no_collisions_among_many_ids():
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "/_-. :"
    ids = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))) for _ in range(20000)}
    names = {image_filename(i, "https://h/images/photo.jpg").lower() for i in ids}
    assert len(names) == len(ids)


def test_two_ids_that_collided_are_two_images_in_the_catalogue(remote_images, cheap_ids,
                                                               make_worker, db):
    from tests.remote.antenna_test_server import AntennaTestServer

    # two sheet photos (the first two of all are the DSLR ones, refused as not a trap sheet)
    first, second = cheap_ids[:2]
    images = {"a/b": remote_images[first], "a_b": remote_images[second]}
    with AntennaTestServer(images) as server:
        server.add_job(31, "moth_binary", ["a/b", "a_b"])
        worker, _ = make_worker(server, batch_size=2, download_threads=2)
        summary = worker.run()
        assert summary.error is None and summary.failed == 0
        answers = server.answers(31)
        assert sorted(server.state.jobs[31].tasks[t].image_id for t in answers) == ["a/b", "a_b"]
    with db.session() as s:
        rows = s.execute(select(Image.rel_path, Image.size)).all()
    assert len(rows) == 2, rows
    assert sorted(size for _, size in rows) == sorted(len(b) for b in images.values())
    assert {rel for rel, _ in rows} == {image_filename("a/b", "x/a%2Fb.jpg"), "a_b.jpg"}
