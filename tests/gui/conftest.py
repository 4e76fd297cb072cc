"""Fixtures for the GUI tests: a real Services facade over a temporary database and settings
folder (see the autouse fixture in tests/conftest.py), and the real main window."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def gui_thread_collector(qapp):
    """Garbage collection on the GUI thread only, as in the app (``gui.collector``)."""
    from trapgui.gui.collector import GuiThreadCollector

    collector = GuiThreadCollector()
    yield collector
    collector.stop()
    collector.deleteLater()


@pytest.fixture
def services():
    from trapgui.services.app_services import Services

    svc = Services.create()
    yield svc
    svc.close()


@pytest.fixture
def fast_settings(services):
    """Built-in detector only (no weights exist on this machine), one CPU worker."""
    s = services.settings
    s.detector, s.binary_classifier, s.species_classifier, s.order_classifier = (
        "builtin", None, None, None)
    s.device = "cpu"
    s.auto_batch_sizes = False  # these tests count on batches of 2 images
    s.detection_batch_size = 2
    services.save_settings()
    return s


@pytest.fixture
def main_window(qtbot, services):
    from trapgui.gui.job_runner import job_runner

    from trapgui.gui.main_window import MainWindow

    window = MainWindow(services)
    # not qtbot.addWidget: pytest-qt would delete the window before this fixture's teardown
    # has stopped its run and waited for its background calls
    window.show()
    window.start()
    yield window
    if window.controller.busy:
        window.controller.cancel()
        qtbot.waitUntil(lambda: not window.controller.busy, timeout=60_000)
    window.scanner.cancel()
    qtbot.waitUntil(lambda: not window.scanner.busy, timeout=30_000)
    job_runner().wait(30)
    qtbot.wait(50)  # deliver finished background calls while the widgets still exist
    window._close_when_idle = False
    window.close()
    window.deleteLater()
    qtbot.wait(10)


@pytest.fixture(scope="session")
def tiny_trap_images(tmp_path_factory, small_trap_images):
    """The downscaled shared images shrunk again (longest side 400, EXIF kept): processing
    tests exercise the GUI's run control, not the detector, and the CI machine is small."""
    from PIL import Image

    out = tmp_path_factory.mktemp("tiny-trap")
    for src in sorted(small_trap_images.rglob("*.jpg")) + sorted(small_trap_images.rglob("*.JPG")):
        dst = out / src.relative_to(small_trap_images)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(src) as im:
            exif = im.info.get("exif")
            im = im.convert("RGB")
            im.thumbnail((400, 400))
            im.save(dst, quality=90, **({"exif": exif} if exif else {}))
        st = src.stat()
        os.utime(dst, (st.st_atime, st.st_mtime))
    return out
