"""The review grid: a QListView of best crops driven from the keyboard.

Enter confirms, Delete or R rejects as "not an insect", F marks a fixture, M merges the
selected occurrences into one individual, S opens the current one's frames (split, move,
delete or draw a box), B draws a missed insect on its best frame, L (or typing
any other letter) opens the relabel picker with that letter typed, the arrows move,
Shift/Ctrl select several. The grid only says what was asked (signals); the review view acts.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QListView

from trapgui.gui.review_delegate import ReviewDelegate

_CONFIRM = {Qt.Key.Key_Return, Qt.Key.Key_Enter}
_LOOK_CHANGES = {QEvent.Type.PaletteChange, QEvent.Type.FontChange, QEvent.Type.StyleChange,
                 QEvent.Type.ApplicationPaletteChange, QEvent.Type.ApplicationFontChange,
                 QEvent.Type.DevicePixelRatioChange}
_REJECT = {Qt.Key.Key_Delete, Qt.Key.Key_R, Qt.Key.Key_Backspace}


class ReviewGrid(QListView):
    confirmRequested = Signal()
    rejectRequested = Signal()
    fixtureRequested = Signal()
    relabelRequested = Signal(str)  # what was typed so far
    undoRequested = Signal()
    mergeRequested = Signal()
    splitRequested = Signal()
    boxRequested = Signal()  # B: draw a missed insect on the current one's best frame

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("reviewGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # 5,000 crops lay out without measuring each
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(500)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setItemDelegate(ReviewDelegate(self))
        self.setIconSize(QSize(136, 136))
        self.setToolTip("")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in _LOOK_CHANGES:  # the delegate's cached tiles are of the old look
            self.itemDelegate().forget_look()
            self.viewport().update()
        super().changeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        plain = mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier)
        if event.matches(QKeySequence.StandardKey.Undo):
            # also the view's shortcut; here for when the window is not the active one
            self.undoRequested.emit()
        elif key in _CONFIRM and mods == Qt.KeyboardModifier.NoModifier:
            self.confirmRequested.emit()
        elif key in _REJECT and mods == Qt.KeyboardModifier.NoModifier:
            self.rejectRequested.emit()
        elif key == Qt.Key.Key_F and mods == Qt.KeyboardModifier.NoModifier:
            self.fixtureRequested.emit()
        elif key == Qt.Key.Key_M and mods == Qt.KeyboardModifier.NoModifier:
            self.mergeRequested.emit()
        elif key == Qt.Key.Key_S and mods == Qt.KeyboardModifier.NoModifier:
            self.splitRequested.emit()
        elif key == Qt.Key.Key_B and mods == Qt.KeyboardModifier.NoModifier:
            self.boxRequested.emit()
        elif key == Qt.Key.Key_L and mods == Qt.KeyboardModifier.NoModifier:
            self.relabelRequested.emit("")
        elif plain and event.text() and event.text().isalpha():
            self.relabelRequested.emit(event.text())  # type-ahead: start the name
        else:
            super().keyPressEvent(event)

    def move_next(self, step: int = 1) -> None:
        """The cursor to the next (or, with -1, previous) occurrence, selecting only it."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return
        row = self.currentIndex().row() if self.currentIndex().isValid() else -1
        row = max(0, min(model.rowCount() - 1, row + step))
        index = model.index(row, 0)
        self.setCurrentIndex(index)
        self.scrollTo(index)
