"""The Remote tab driven by pytest-qt against the real Antenna test server on loopback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.remote.antenna_test_server import AntennaTestServer
from tests.remote.conftest import SHARED, _small_jpeg

pytestmark = [pytest.mark.gui, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    files = sorted((SHARED / "sequential").glob("*.jpg")) + sorted((SHARED / "vermont").glob("*.jpg"))
    return {f"seq{i}": _small_jpeg(f) for i, f in enumerate(files)}


@pytest.fixture
def remote_services(services):
    from trapgui.ml.registry import install_random_weights

    install_random_weights(services.models.store, "moth_binary_resnet50_2024", seed=5)
    s = services.settings
    s.remote_detector = "builtin"
    s.device = "cpu"
    s.remote_batch_size = 1
    s.remote_batch_timeout_s = 0.1
    s.remote_download_threads = 2
    services.save_settings()
    return services


@pytest.fixture
def server(images):
    with AntennaTestServer(images) as srv:
        yield srv


@pytest.fixture
def tab(qtbot, remote_services, main_window):
    """The Remote tab of the real window: its runs go through the window's RunController and
    show in the processing panel, like local runs (the window's fixture stops a run)."""
    widget = main_window.remote
    main_window.resize(1100, 900)
    qtbot.waitUntil(lambda: widget.pipelines.count() > 0, timeout=30_000)
    return widget


def _pipeline_item(tab, slug):
    from PySide6.QtCore import Qt

    for i in range(tab.pipelines.count()):
        item = tab.pipelines.item(i)
        if item.data(Qt.ItemDataRole.UserRole) == slug:
            return item
    raise AssertionError(f"{slug} not listed")


def _connect(qtbot, tab, server, token):
    tab.url_edit.setText(server.base_url)
    tab.token_edit.setText(token)
    tab.test_button.click()
    qtbot.waitUntil(lambda: tab.test_button.isEnabled(), timeout=30_000)


def test_connection_jobs_and_a_processed_job(qtbot, tab, server, remote_services, tmp_path,
                                             main_window):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLineEdit

    server.add_job(41, "moth_binary", ["seq0", "seq1"])
    assert tab.token_edit.echoMode() == QLineEdit.EchoMode.Password
    tab.show_token.setChecked(True)
    assert tab.token_edit.echoMode() == QLineEdit.EchoMode.Normal
    tab.show_token.setChecked(False)

    _connect(qtbot, tab, server, "not-the-token")
    assert tab.connection_label.text().startswith("✗")
    assert "refused the token" in tab.connection_label.text()
    assert "not-the-token" not in tab.connection_label.text()

    _connect(qtbot, tab, server, server.token)
    assert tab.connection_label.text().startswith("✓ Connected. 2 project(s)")
    # the token is stored owner-only (no keyring backend here) and never in settings.json
    secrets = Path(remote_services.paths.config_dir) / "secrets.json"
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    assert server.token not in remote_services.paths.settings_file.read_text()

    item = _pipeline_item(tab, "moth_binary")
    assert item.flags() & Qt.ItemFlag.ItemIsEnabled
    item.setCheckState(Qt.CheckState.Checked)
    assert not (_pipeline_item(tab, "global_moths_2024").flags() & Qt.ItemFlag.ItemIsEnabled)
    tab.refresh_button.click()
    qtbot.waitUntil(lambda: tab.jobs.count() == 1, timeout=30_000)
    assert "Job 41" in tab.jobs.item(0).text()

    controller, panel, status = main_window.controller, main_window.panel, main_window.status
    processed: list = []
    controller.committed.connect(lambda ids, _d: processed.extend(ids))
    live: list[str] = []  # the panel's counts line after each progress it showed
    controller.progress.connect(lambda _p: live.append(panel.counts.text()))
    bar_texts: list[str] = []
    controller.progress.connect(lambda _p: bar_texts.append(status.queue_label.text()))
    with qtbot.waitSignal(controller.stateChanged, timeout=10_000):
        tab.start_button.click()
    # one panel and one set of controls for local and remote runs
    assert controller.kind == "remote" and controller.busy
    assert not tab.start_button.isEnabled() and panel.cancel_button.isEnabled()
    assert panel.pause_button.isEnabled() and main_window.pause_action.isEnabled()
    assert panel.title.text().startswith("Processing Antenna job 41")
    assert status.queue_label.text() != "Idle"
    main_window.grab().save(str(tmp_path / "remote_run.png"))
    qtbot.waitUntil(lambda: not controller.busy, timeout=180_000)

    assert panel.counts.text().startswith("Finished: 2 task(s) done, 0 failed, 2 posted")
    assert "2 tasks done" in live[-1]
    # every box sent is stored; the count says so and names the views' threshold
    assert "detections stored (all scores; the views count those ≥ 0.50)" in panel.counts.text()
    assert bar_texts and all(t != "Idle" for t in bar_texts)
    assert status.queue_label.text() == "Idle"
    assert len(processed) == 2
    answers = server.answers(41)
    assert len(answers) == 2 and all(len(a) == 1 for a in answers.values())
    # the processed images open in the viewer like local ones: file on disk, with their boxes
    details = [remote_services.results.image_details(i) for i in processed]
    assert all(d is not None and Path(d.path).is_file() for d in details)
    assert all(d.deployment_name.startswith("Antenna job 41") for d in details)
    posted = sum(len(r["detections"]) for [(_, r)] in answers.values())
    assert sum(len(d.boxes) for d in details) == posted > 0
    tab.grab().save(str(tmp_path / "remote_tab.png"))


def test_stop_finishes_claimed_tasks_and_posts(qtbot, tab, server, main_window):
    from PySide6.QtCore import Qt

    server.add_job(42, "moth_binary", [f"seq{i}" for i in range(8)])
    server.inject("delay", r"/images/", times=None, seconds=0.5)
    _connect(qtbot, tab, server, server.token)
    _pipeline_item(tab, "moth_binary").setCheckState(Qt.CheckState.Checked)
    tab.refresh_button.click()
    qtbot.waitUntil(lambda: tab.jobs.count() == 1, timeout=30_000)
    tab.start_button.click()
    qtbot.waitUntil(lambda: len(server.answers(42)) >= 1, timeout=120_000)
    main_window.panel.cancel_button.click()  # the same Cancel as a local run: stop claiming
    qtbot.waitUntil(lambda: not main_window.controller.busy, timeout=120_000)

    job = server.state.jobs[42]
    delivered = {t.id for t in job.tasks.values() if t.deliveries}
    answered = {t for t, a in server.answers(42).items() if a}
    assert delivered == answered  # everything claimed was answered before stopping
    assert len(answered) < 8  # it did stop early
    assert main_window.panel.counts.text().startswith("Cancelled:")
    assert main_window.controller.last_summary.status == "cancelled"


def test_pause_holds_a_remote_run_and_resume_finishes_it(qtbot, tab, server, main_window):
    from PySide6.QtCore import Qt

    controller, panel = main_window.controller, main_window.panel
    server.add_job(43, "moth_binary", [f"seq{i}" for i in range(6)])
    server.inject("delay", r"/images/", times=None, seconds=0.3)
    _connect(qtbot, tab, server, server.token)
    _pipeline_item(tab, "moth_binary").setCheckState(Qt.CheckState.Checked)
    tab.refresh_button.click()
    qtbot.waitUntil(lambda: tab.jobs.count() == 1, timeout=30_000)
    seen = []
    controller.progress.connect(seen.append)
    tab.start_button.click()
    answered = lambda: sum(1 for a in server.answers(43).values() if a)  # noqa: E731
    qtbot.waitUntil(lambda: answered() >= 1, timeout=120_000)

    main_window.pause_action.trigger()  # Processing ▸ Pause works for remote runs too
    assert controller.state == "paused" and panel.pause_button.text() == "Resume"
    # the task in hand is finished and posted, then nothing more is processed
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].paused, timeout=60_000)
    qtbot.wait(1500)
    held = answered()
    qtbot.wait(2000)
    assert answered() == held < 6
    assert controller.busy and main_window.status.queue_label.text().startswith("Paused")

    panel.pause_button.click()  # resume
    qtbot.waitUntil(lambda: not controller.busy, timeout=180_000)
    assert answered() == 6
    assert controller.last_summary.status == "finished"
    assert panel.counts.text().startswith("Finished: 6 task(s) done, 0 failed, 6 posted")


@pytest.mark.parametrize("path", ["/api/v1", ""])
def test_a_wrong_api_path_gets_the_expected_form(qtbot, tab, server, path):
    tab.url_edit.setText(server.root + path)
    tab.token_edit.setText(server.token)
    tab.test_button.click()
    qtbot.waitUntil(lambda: tab.test_button.isEnabled(), timeout=30_000)
    text = tab.connection_label.text()
    assert text.startswith("✗") and "HTTP 404" in text, text
    assert f"ending in /api/v2 (here probably {server.base_url})" in text, text


def test_remote_jobs_are_reachable_on_a_fresh_install(qtbot, remote_services, main_window,
                                                       tmp_path):
    """No trap yet: the empty page and the Processing menu both lead to the Remote jobs tab."""
    window = main_window
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.empty, timeout=10_000)
    assert window.empty.remote_button.isVisible()
    window.grab().save(str(tmp_path / "empty.png"))
    window.empty.remote_button.click()
    assert window.stack.currentWidget() is window.tabs
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Remote jobs"
    window.tree.reload()  # the tree's reload (still no trap) does not hide the tab again
    qtbot.wait(500)
    assert window.stack.currentWidget() is window.tabs
    window.tabs.setCurrentIndex(0)
    window.remote_action.trigger()
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Remote jobs"
