"""One detection threshold, one place: the toolbar's value is saved, and after a restart every
control (the toolbar, the viewer's score slider) shows it and the viewer draws exactly the
boxes at or above it. Moving the slider moves the window's threshold too."""

from __future__ import annotations

import sqlite3

import pytest

from tests.gui.results_fixtures import populate
from trapgui.config.settings import load_settings
from trapgui.gui.job_runner import job_runner
from trapgui.gui.main_window import MainWindow
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui


def _near(value: float, expected: float) -> bool:
    # not pytest.approx: it imports numpy, which a background thread may be importing
    return abs(value - expected) < 1e-9


def _services(tmp_path) -> Services:
    return Services.create(config_dir=tmp_path / "config", data_dir=tmp_path / "data",
                           db_path=tmp_path / "catalogue.sqlite3")


def _open_window(qtbot, services) -> MainWindow:
    window = MainWindow(services)
    window.show()
    window.start()
    return window


def _close_window(qtbot, window: MainWindow) -> None:
    job_runner().wait(30)
    qtbot.wait(50)
    window._close_when_idle = False
    window.close()
    window.deleteLater()
    qtbot.wait(10)


def _scores(path, image_id) -> list[float]:
    with sqlite3.connect(path) as con:
        return [r[0] for r in con.execute("SELECT score FROM detections WHERE image_id = ?",
                                          (image_id,))]


def test_the_saved_threshold_is_every_controls_value_after_a_restart(qtbot, tmp_path,
                                                                     small_trap_images):
    folder = small_trap_images / "panama"
    names = sorted(p.name for p in folder.glob("*.jpg"))
    services = _services(tmp_path)
    cat = populate(services.db, folder, n_detections=80, n_nights=1, images_per_night=len(names),
                   image_names=names, image_size=(1600, 1200), with_classifications=True,
                   seed=3)
    assert _near(services.settings.detection_threshold, 0.5)  # the default

    window = _open_window(qtbot, services)
    window.det_spin.setValue(0.80)
    qtbot.waitUntil(lambda: _near(window.viewer.threshold(), 0.80), timeout=10_000)
    _close_window(qtbot, window)
    services.close()
    assert _near(load_settings(tmp_path / "config" / "settings.json").detection_threshold, 0.80)

    services = _services(tmp_path)
    try:
        window = _open_window(qtbot, services)
        viewer = window.viewer
        assert _near(window.det_spin.value(), 0.80)
        assert viewer.slider.value() == 80 and _near(viewer.threshold(), 0.80)
        assert viewer.slider_label.text() == "≥ 0.80"

        image_id = cat.image_ids[0]
        scores = _scores(services.db.path, image_id)
        assert any(s < 0.8 for s in scores) and any(s >= 0.8 for s in scores)
        viewer.show_image(image_id, -1)
        qtbot.waitUntil(lambda: viewer.current_image_id() == image_id
                        and viewer.is_full_resolution(), timeout=20_000)
        assert len(viewer.box_items()) == len(scores)
        assert sorted(i.info.score for i in viewer.visible_box_items()) == \
            sorted(s for s in scores if s >= 0.8)

        # the slider is the window's threshold, not a second one
        viewer.slider.setValue(65)
        assert _near(window.det_spin.value(), 0.65)
        qtbot.waitUntil(lambda: _near(services.settings.detection_threshold, 0.65),
                        timeout=10_000)
        assert sorted(i.info.score for i in viewer.visible_box_items()) == \
            sorted(s for s in scores if s >= 0.65)
        _close_window(qtbot, window)
    finally:
        services.close()
    assert _near(load_settings(tmp_path / "config" / "settings.json").detection_threshold, 0.65)
