"""Processed remote images carry the name the server gives them: Antenna's image URL is the
image's storage key, which ends in the original file name (``vermont/20220622200400-….jpg``),
so the catalogue, the viewer and every failure message show that name, not the server's
image id; two images of one name (two events) stay two images; the name does not depend on
the URL's presigned query, which changes between deliveries."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.remote.antenna_test_server import AntennaTestServer
from tests.remote.conftest import SHARED
from trapgui.core.jobs import ItemFailed
from trapgui.db.tables import Image
from trapgui.remote.local_images import image_filename, url_file_name

pytestmark = pytest.mark.timeout(300)


def _originals() -> dict[str, Path]:
    """image id -> the shared file it was made from (the ids of ``remote_images``)."""
    files = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    return {f"img{i:02d}": f for i, f in enumerate(files)}


def test_names_come_from_the_url_path_not_the_query_or_the_id():
    a = "https://s3.example.org/ami/vermont/2022_06_22/20220622200400-00-79.jpg?X-Amz-Signature=1"
    b = "https://s3.example.org/ami/vermont/2022_06_22/20220622200400-00-79.jpg?X-Amz-Signature=2"
    assert image_filename("4711", a) == image_filename("4711", b) == \
        "20220622200400-00-79 [4711].jpg"
    assert url_file_name(a) == "20220622200400-00-79.jpg"
    assert url_file_name("https://h/x/%1b%5b2Jevil.jpg?sig=SECRET") == "\\x1b[2Jevil.jpg"
    assert url_file_name("https://h/images/") == ""


def test_remote_images_are_named_as_on_the_server(remote_images, cheap_ids, make_worker, db):
    originals = _originals()
    ids = cheap_ids[:3]
    keys = {i: f"{originals[i].parent.name}/2022_06_22/{originals[i].name}" for i in ids}
    # one name in two events (two nights' folders): two images, never one file
    images = {i: remote_images[i] for i in ids}
    images["ev1"], images["ev2"] = remote_images[cheap_ids[3]], remote_images[cheap_ids[4]]
    keys["ev1"] = "vermont/2022_06_21/snapshot.jpg"
    keys["ev2"] = "vermont/2022_06_22/snapshot.jpg"
    images["bad"] = remote_images[cheap_ids[5]]
    keys["bad"] = "vermont/2022_06_22/20220622231500-broken.jpg"
    with AntennaTestServer(images) as server:
        server.inject("not_image", "/images/vermont/2022_06_22/20220622231500-broken", times=None)
        server.add_job(31, "moth_binary", list(images), keys)
        worker, events = make_worker(server, batch_size=3, download_threads=2)
        summary = worker.run()
        assert summary.error is None, summary.error

    with db.session() as s:
        rows = dict(s.execute(select(Image.rel_path, Image.size)).all())
    good = [i for i in images if i != "bad"]
    expected = {image_filename(i, f"http://h/images/{keys[i]}?sig=1"): len(images[i])
                for i in good}
    assert rows == expected  # sizes: each file holds its own image's bytes
    for i in ids:
        assert f"{Path(originals[i].name).stem} [{i}].jpg" in rows  # the original file name
    assert "snapshot [ev1].jpg" in rows and "snapshot [ev2].jpg" in rows
    assert not any(name.startswith("img") for name in rows)

    failures = [e for e in events if isinstance(e, ItemFailed)]
    assert len(failures) == 1, failures
    assert failures[0].name.startswith("20220622231500-broken.jpg (image bad, task t31-"), \
        failures[0].name
    assert "SIGNATURE" not in failures[0].name and "X-Amz" not in failures[0].name
