"""The "not classified yet" strip: a detection threshold below the classification floor says how
many stored boxes wait for labels, and "Classify them" classifies them on the job runner.

Real catalogue, real built-in detector, the real moth/non-moth ResNet-50 architecture with
random weights, a real run through the engine, the real widget and main window."""

from __future__ import annotations

import pytest

from tests.pipeline_helpers import make_tiny_trap
from trapgui.db import unclassified
from trapgui.gui.job_runner import job_runner
from trapgui.gui.unclassified_bar import UnclassifiedBar

# the built-in detector scores these tiny images' boxes from ~0.5 to 1.0 (as tests/test_floors)
STORE, CLASSIFY, LOWER = 0.6, 0.95, 0.8


@pytest.fixture(scope="module")
def tiny_src(tmp_path_factory):
    return make_tiny_trap(tmp_path_factory.mktemp("tiny-unclassified"), side=320, limit=4,
                          folders=("vermont", "sequential"))


@pytest.fixture
def processed(services, tiny_src, tmp_path):
    """One trap processed with the settings' models: boxes from STORE stored, from CLASSIFY
    classified. Returns (deployment id, pipeline id)."""
    import shutil

    from trapgui.ml.registry import install_random_weights
    from trapgui.pipeline.engine import Engine
    from trapgui.scan.indexer import scan_folder

    install_random_weights(services.models.store, "moth_binary_resnet50_2024", seed=5)
    s = services.settings
    s.detector, s.binary_classifier, s.species_classifier, s.order_classifier = (
        "builtin", "moth_binary_resnet50_2024", None, None)
    s.device = "cpu"
    s.auto_batch_sizes = False
    s.classification_batch_size = 8
    s.storage_floor, s.classification_floor = STORE, CLASSIFY
    s.detection_threshold = CLASSIFY
    services.save_settings()
    trap = shutil.copytree(tiny_src, tmp_path / "trap")
    dep = scan_folder(services.db, trap).deployment_id
    engine = Engine(services.db, services.models.store, services.processing.spec(),
                    devices="cpu")
    engine.enqueue_deployment(dep)
    summary = engine.run()
    assert summary.status == "finished" and summary.failed == 0
    assert unclassified.coverage(services.db, engine.pipeline_id, LOWER).unclassified > 0
    return dep, engine.pipeline_id


def test_below_the_floor_the_bar_counts_and_classifies_them(qtbot, services, processed, tmp_path):
    dep, pid = processed
    bar = UnclassifiedBar(services)
    qtbot.addWidget(bar)
    bar.set_selection(dep, [])
    bar.set_threshold(CLASSIFY, 0.5)
    qtbot.waitUntil(lambda: bar.coverage is not None, timeout=30_000)
    assert bar.isHidden()  # at the floor everything is classified

    bar.set_threshold(LOWER, 0.5)
    qtbot.waitUntil(lambda: not bar.isHidden(), timeout=30_000)
    waiting = unclassified.coverage(services.db, pid, LOWER).unclassified
    assert bar.coverage.unclassified == waiting
    assert f"{waiting:,} box" in bar.message.text()
    assert "0.80" in bar.message.text() and "0.95" in bar.message.text()
    assert "this trap" in bar.message.text()
    bar.resize(900, bar.sizeHint().height())
    bar.grab().save(str(tmp_path / "unclassified_bar.png"))

    committed = []
    bar.resultsChanged.connect(lambda ids, n: committed.append((ids, n)))
    with qtbot.waitSignal(bar.classified, timeout=300_000) as done:
        qtbot.mouseClick(bar.classify_button, qtbot_left())
        assert bar.running
        assert bar.classify_button.isHidden() and not bar.cancel_button.isHidden()
    summary = done.args[0]
    assert summary.status == "finished" and summary.classified == waiting
    assert sum(n for ids, n in committed if ids) == waiting  # every batch told the views
    qtbot.waitUntil(lambda: bar.isHidden(), timeout=30_000)
    assert unclassified.coverage(services.db, pid, LOWER).unclassified == 0
    # lower still: the boxes between STORE and LOWER are still waiting, and nothing below STORE
    bar.set_threshold(0.1, 0.5)
    qtbot.waitUntil(lambda: not bar.isHidden(), timeout=30_000)
    assert bar.coverage.unclassified == unclassified.coverage(services.db, pid, STORE).unclassified
    assert "below 0.60 were not stored" in bar.message.text()
    job_runner().wait(30)


def test_the_window_shows_the_bar_when_the_threshold_goes_below_the_floor(qtbot, services,
                                                                          processed, main_window):
    dep, _pid = processed
    bar = main_window.unclassified
    assert bar in main_window.views
    qtbot.waitUntil(lambda: main_window.tree.tree.topLevelItemCount() > 0, timeout=60_000)
    main_window.tree.select_deployment(dep)
    main_window.det_spin.setValue(LOWER)
    qtbot.waitUntil(lambda: bar.isVisible() and bar.coverage is not None
                    and bar.coverage.threshold == LOWER, timeout=60_000)
    assert "not classified yet" in bar.message.text()
    main_window.det_spin.setValue(CLASSIFY)
    qtbot.waitUntil(lambda: bar.isHidden(), timeout=60_000)


def qtbot_left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
