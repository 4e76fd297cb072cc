"""Dropping trap folders anywhere on the main window: real QDragEnter/QDrop events with file
URLs, sent to a child widget deep inside the window."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication


def _mime(paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drag_enter(widget, mime) -> QDragEnterEvent:
    event = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def _drop(widget, mime) -> QDropEvent:
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def _names(window):
    tree = window.tree.tree
    return sorted(tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount()))


def test_dropping_two_folders_on_a_child_widget_scans_both(qtbot, main_window, trap_copy):
    target = main_window.tree.tree.viewport()  # a child that does not accept drops itself
    mime = _mime([trap_copy / "vermont", trap_copy / "panama"])

    enter = _drag_enter(target, mime)
    assert enter.isAccepted()
    assert main_window.drop.isVisible(), "no visual feedback while dragging"
    assert main_window.drop.geometry() == main_window.rect()

    drop = _drop(target, mime)
    assert drop.isAccepted()
    assert not main_window.drop.isVisible()
    qtbot.waitUntil(lambda: _names(main_window) == ["panama", "vermont"], timeout=30_000)
    qtbot.waitUntil(lambda: not main_window.scanner.busy, timeout=30_000)
    qtbot.waitUntil(lambda: main_window.tree.tree.topLevelItem(1).childCount() == 2,
                    timeout=10_000)
    vermont = main_window.tree.tree.topLevelItem(1)
    # the 00:04 image belongs to the night that began the evening before: two nights, 3 images
    assert vermont.text(1) == "3"
    assert sorted(vermont.child(i).text(1) for i in range(2)) == ["1", "2"]
    assert main_window.stack.currentWidget() is main_window.tabs
    assert str((trap_copy / "panama").resolve()) in main_window.services.settings.recent_folders


def test_dropping_an_image_file_opens_its_folder(qtbot, main_window, trap_copy):
    image = next((trap_copy / "DSLR").iterdir())
    mime = _mime([image])
    assert _drag_enter(main_window.centralWidget(), mime).isAccepted()
    drop = _drop(main_window.centralWidget(), mime)
    assert drop.isAccepted()
    qtbot.waitUntil(lambda: _names(main_window) == ["DSLR"], timeout=30_000)


def test_text_drags_are_not_taken_and_show_no_overlay(qtbot, main_window):
    mime = QMimeData()
    mime.setText("not a folder")
    enter = _drag_enter(main_window.tree.tree.viewport(), mime)
    assert not enter.isAccepted()
    assert not main_window.drop.isVisible()


def test_a_missing_folder_gives_a_clear_message_not_a_trace(qtbot, main_window, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    main_window.open_folders([str(tmp_path / "gone")])
    qtbot.waitUntil(lambda: main_window.findChild(QMessageBox, "errorDialog") is not None,
                    timeout=10_000)
    box = main_window.findChild(QMessageBox, "errorDialog")
    assert "gone" in box.text() and "Traceback" not in box.text()
    box.close()
