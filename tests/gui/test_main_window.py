"""The main window as a first-time and returning user sees it: empty state, menus and
shortcuts, tooltips, model offer, model manager, About, geometry persistence."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QComboBox, QDialog, QLabel,
                               QLineEdit, QMessageBox, QToolBar)


def test_first_start_shows_what_to_do_and_no_torch(qtbot, main_window):
    import sys

    qtbot.waitUntil(lambda: main_window.stack.currentWidget() is main_window.empty,
                    timeout=10_000)
    texts = " ".join(w.text() for w in main_window.empty.findChildren(QLabel))
    assert "Drop a trap folder here" in texts and "File ▸ Open" in texts
    assert main_window.windowTitle().startswith("trapgui")
    assert not main_window.windowIcon().isNull()
    # building the window never loads the engine (torch): only a run does, in the background
    assert "trapgui.pipeline.engine" not in sys.modules or main_window.controller.state == "idle"


def test_shortcuts(main_window):
    shortcuts = {a.shortcut().toString(QKeySequence.SequenceFormat.PortableText)
                 for a in main_window.findChildren(type(main_window.open_action))}
    for wanted in ("Ctrl+O", "Ctrl+E", "Ctrl+,", "F1", "Ctrl+Q"):
        assert wanted in shortcuts, wanted


def test_every_control_of_the_shell_has_a_tooltip(qtbot, main_window):
    shell = [main_window.tree, main_window.panel, main_window.status, main_window.empty,
             main_window.offer, main_window.findChild(QToolBar, "thresholdBar")]
    missing = []
    for root in shell:
        for kind in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit):
            for w in root.findChildren(kind):
                if w.objectName().startswith("qt_") or isinstance(w.parent(), QAbstractSpinBox):
                    continue  # Qt's own parts (scroll bar buttons, a spin box's line edit)
                if not w.toolTip():
                    missing.append(f"{type(w).__name__} '{getattr(w, 'text', lambda: '')()}'")
    assert not missing, missing
    for action in main_window.menuBar().actions():
        for sub in action.menu().actions():
            if not sub.isSeparator() and sub.menu() is None:
                assert sub.toolTip() and sub.toolTip() != sub.text().replace("&", ""), sub.text()


def test_model_offer_is_dismissable_and_remembered(qtbot, services):
    from trapgui.gui.main_window import MainWindow

    first = MainWindow(services)
    qtbot.addWidget(first)
    first.show()
    first.start()
    qtbot.waitUntil(lambda: first.offer.isVisible(), timeout=60_000)
    first.findChild(QAbstractButton, "offerDismissButton").click()
    assert not first.offer.isVisible()

    second = MainWindow(services)
    qtbot.addWidget(second)
    second.show()
    second.start()
    from trapgui.gui.main_window import MODEL_CHECK_DELAY_MS

    qtbot.wait(MODEL_CHECK_DELAY_MS + 1500)
    assert not second.offer.isVisible()


def test_model_manager_lists_the_catalogue(qtbot, main_window):
    main_window.open_model_manager()
    manager = main_window.findChild(QDialog, "modelManager")
    qtbot.waitUntil(lambda: manager.table.rowCount() >= 10, timeout=60_000)
    rows = {manager.table.item(r, 0).text(): manager.table.item(r, 2).text()
            for r in range(manager.table.rowCount())}
    assert rows["Built-in detector (no download needed)"] == "built in"
    assert rows["Moth / Non-Moth Classifier"] == "not installed"
    assert any("Species" in name for name in rows)
    # a model that is not installed can be downloaded or imported, not verified or removed
    for r in range(manager.table.rowCount()):
        if manager.table.item(r, 0).text() == "Moth / Non-Moth Classifier":
            manager.table.selectRow(r)
    assert manager.download_button.isEnabled() and manager.import_button.isEnabled()
    assert not manager.verify_button.isEnabled() and not manager.remove_button.isEnabled()
    manager.close()


def _settled(qtbot, manager) -> str:
    """The message line once the action and the catalogue reload after it have both ended."""
    from trapgui.gui.job_runner import job_runner

    qtbot.waitUntil(lambda: manager._busy_key is None, timeout=120_000)
    qtbot.waitUntil(lambda: job_runner().pending() == 0, timeout=60_000)
    qtbot.wait(100)
    return manager.message.text()


def test_a_text_file_renamed_model_pth_is_refused_and_the_sentence_stays(qtbot, main_window,
                                                                          tmp_path):
    main_window.open_model_manager()
    manager = main_window.findChild(QDialog, "modelManager")
    qtbot.waitUntil(lambda: manager.table.rowCount() >= 10, timeout=60_000)
    bogus = tmp_path / "model.pth"
    bogus.write_text("these are my notes, not weights\n")
    labels = tmp_path / "labels.json"
    labels.write_text('{"moth": 0, "nonmoth": 1}')
    manager.import_files("moth_binary_resnet50_2024", str(bogus), str(labels))
    message = _settled(qtbot, manager)
    # the reload that follows an action used to replace it with "1 of 19 models are ready"
    assert message == "The file model.pth cannot be used: it is not a PyTorch weights file."
    assert manager.message.font().bold()
    manager.grab().save(str(tmp_path / "model-manager-import.png"))
    manager.close()


def test_an_offline_download_says_why_in_one_sentence(qtbot, main_window, services, tmp_path):
    import socket

    from trapgui.ml.model_catalogue import parse_model_catalogue
    from trapgui.ml.store import ModelStore
    from tests.test_model_store import KEY, local_catalogue

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()  # nothing listens there: the connection is refused, as on an offline computer
    services.models._store = ModelStore(
        services.paths.models_dir,
        parse_model_catalogue(local_catalogue(f"http://127.0.0.1:{closed}")),
        retries=1, backoff_s=0.01)
    main_window.open_model_manager()
    manager = main_window.findChild(QDialog, "modelManager")
    qtbot.waitUntil(lambda: manager.table.rowCount() >= 10, timeout=60_000)
    for r in range(manager.table.rowCount()):
        if manager.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == KEY:
            manager.table.selectRow(r)
    manager.download_button.click()
    message = _settled(qtbot, manager)
    assert message.startswith("Downloading ") and " failed " in message, message
    assert "ready to use" not in message and "\n" not in message
    assert manager.message.font().bold()
    manager.close()


def test_about_shows_versions_devices_paths_and_copies_them(qtbot, main_window, services):
    from PySide6.QtGui import QGuiApplication

    main_window.open_about()
    about = main_window.findChild(QDialog, "aboutDialog")
    qtbot.waitUntil(lambda: "torch" in about.info, timeout=60_000)
    for key in ("trapgui", "Python", "Qt", "torch", "Devices", "Database", "Models folder"):
        assert key in about.info, key
    assert str(services.paths.db_path) in about.details.toPlainText()
    about.copy_button.click()
    assert QGuiApplication.clipboard().text() == about.text()
    assert "cpu" in about.info["Devices"]
    about.close()


def test_geometry_is_persisted(qtbot, services):
    from trapgui.gui.main_window import MainWindow

    first = MainWindow(services)
    qtbot.addWidget(first)
    first.show()
    # (the offscreen screen is small: stay within it, restoreGeometry clamps to the screen)
    first.resize(first.minimumSizeHint().width(), 700)
    wanted = (first.width(), first.height())
    first.close()
    ini = QSettings(str(services.paths.config_dir / "window.ini"), QSettings.Format.IniFormat)
    assert ini.value("geometry") is not None
    second = MainWindow(services)
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == wanted


def test_help_and_nothing_selected_messages(qtbot, main_window):
    main_window.show_help()
    help_box = main_window.findChild(QMessageBox, "helpDialog")
    assert "Open a trap folder" in help_box.text()
    help_box.close()
    main_window.start_processing("selection")
    box = main_window.findChild(QMessageBox, "errorDialog")
    assert "Select a trap" in box.text()
    box.close()


def test_ctrl_e_opens_export_for_the_selected_nights(qtbot, main_window, trap_copy):
    main_window.open_folders([str(trap_copy / "vermont")])
    qtbot.waitUntil(lambda: not main_window.scanner.busy and bool(main_window.tree.summaries),
                    timeout=30_000)
    main_window.tree.select_deployment(main_window.tree.summaries[0].id)
    main_window.export_action.trigger()
    dialog = next(d for d in main_window.findChildren(QDialog)
                  if type(d).__name__ == "ExportDialog")
    assert "2 selected nights" in dialog.scope_label.text()
    dialog.close()
