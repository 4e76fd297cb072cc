"""Drag-and-drop of trap folders anywhere on the main window, with visible feedback.

An application-level event filter sees drag events aimed at *any* widget of the window (a
table, the tree, a text field), so a folder dropped on a child that would otherwise refuse or
swallow it still opens. The overlay is a translucent sheet over the whole window, drawn with
palette colours so it reads in light and dark themes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QApplication, QWidget


def folders_from_mime(mime) -> list[str]:
    """Local folders in a drag; a dropped image file stands for the folder that holds it."""
    if mime is None or not mime.hasUrls():
        return []
    folders: list[str] = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = Path(url.toLocalFile())
        if path.is_file():
            path = path.parent
        if path.is_dir() and str(path) not in folders:
            folders.append(str(path))
    return folders


class DropOverlay(QWidget):
    """Covers its parent window while folders are dragged over it."""

    foldersDropped = Signal(list)

    def __init__(self, window: QWidget):
        super().__init__(window)
        self._window = window
        self._folders: list[str] = []
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        # Qt offers a drag only to widgets that accept drops, walking up from the one under
        # the cursor: the window accepting them makes every plain child a drop target
        window.setAcceptDrops(True)
        self.hide()
        self._leave_timer = QTimer(self, singleShot=True, interval=80)
        self._leave_timer.timeout.connect(self._hide)
        QApplication.instance().installEventFilter(self)

    def is_showing(self) -> bool:
        return self.isVisible()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.DragLeave,
                        QEvent.Type.Drop):
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self._window:
            return False
        if kind == QEvent.Type.DragLeave:
            # moving from one child to its neighbour sends DragLeave then DragEnter: hide a
            # moment later unless the drag re-entered, so the overlay does not flicker
            self._leave_timer.start()
            return False
        folders = folders_from_mime(event.mimeData())
        if not folders:
            return False
        self._leave_timer.stop()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self._show(folders)
            return True
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self._hide()
        self.foldersDropped.emit(folders)
        return True

    def _show(self, folders: list[str]) -> None:
        self._folders = folders
        self.setGeometry(self._window.rect())
        self.raise_()
        self.show()
        self.update()

    def _hide(self) -> None:
        self._folders = []
        self.hide()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API
        pal = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        veil = QColor(pal.color(pal.ColorRole.Window))
        veil.setAlpha(215)
        painter.fillRect(self.rect(), veil)
        accent = pal.color(pal.ColorRole.Highlight)
        pen = QPen(accent, 4, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(self.rect().adjusted(16, 16, -16, -16), 18, 18)
        painter.setPen(pal.color(pal.ColorRole.WindowText))
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        painter.setFont(font)
        n = len(self._folders)
        title = "Drop to open this trap folder" if n == 1 else f"Drop to open {n} trap folders"
        painter.drawText(self.rect().adjusted(0, -40, 0, -40), Qt.AlignmentFlag.AlignCenter, title)
        font.setPointSizeF(font.pointSizeF() / 1.8)
        font.setBold(False)
        painter.setFont(font)
        names = ", ".join(Path(f).name or f for f in self._folders[:4])
        if n > 4:
            names += f" and {n - 4} more"
        painter.drawText(self.rect().adjusted(40, 30, -40, 30), Qt.AlignmentFlag.AlignCenter, names)
