"""The image viewer's toolbar: previous/next, zoom, the score slider, what to draw, and the
legend of box colours. It only holds the controls; the viewer connects them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trapgui.gui.box_item import COLOURS, PEN_STYLES, BoxClass


def swatch(colour: QColor, style=Qt.SolidLine) -> QPixmap:
    """A small box outline in a class colour, as drawn on the image."""
    pix = QPixmap(14, 14)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setPen(QPen(colour, 2.5, style))
    p.drawRect(2, 2, 10, 10)
    p.end()
    return pix


class _ClippedLabel(QLabel):
    """A one-line label whose text may be clipped: its tooltip always holds all of it."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self.setToolTip(text)


class ViewerToolbar(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.prev_button = self._tool("◀", "Previous image of the night (Left arrow)")
        self.next_button = self._tool("▶", "Next image of the night (Right arrow)")
        self.zoom_out_button = self._tool("−", "Zoom out (−, mouse wheel)")
        self.zoom_in_button = self._tool("+", "Zoom in (+, mouse wheel)")
        self.fit_button = self._tool("Fit", "Fit the image to the window (F)")
        self.draw_button = self._tool("Draw box", "Draw a box around an insect the "
                                      "detector missed (B): drag a rectangle on the image; "
                                      "Esc cancels")
        self.draw_button.setCheckable(True)
        self.delete_button = self._tool("Not an insect", "Delete the selected box as not an "
                                        "insect (Delete); Ctrl+Z undoes it")
        self.edit_status = _ClippedLabel(self)
        self.edit_status.setObjectName("viewerEditStatus")
        self.edit_status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # a long sentence is clipped (its tooltip has it whole): it must never squeeze the
        # legend's names or widen the window
        self.edit_status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.zoom_label = QLabel("100%", self)
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("1600%"))
        self.zoom_label.setAlignment(Qt.AlignCenter)

        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setRange(0, 100)
        self.slider.setValue(50)
        self.slider.setFixedWidth(140)
        self.slider.setToolTip("Minimum detection score of the boxes shown")
        self.slider_label = QLabel("≥ 0.50", self)
        self.slider.valueChanged.connect(lambda v: self.slider_label.setText(f"≥ {v / 100:.2f}"))
        self.below_check = QCheckBox("Below threshold", self)
        self.below_check.setToolTip("Also draw the boxes under the minimum score (dashed grey)")
        self.labels_check = QCheckBox("Labels", self)
        self.labels_check.setChecked(True)
        self.labels_check.setToolTip("Show each box's label and score on the image")

        # controls and legend on two rows: on one they forced a 1439 px window, wider than a
        # 1366 px laptop screen
        rows = QVBoxLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(2)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.setSpacing(4)
        rows.addLayout(bar)
        for w in (self.prev_button, self.next_button):
            bar.addWidget(w)
        bar.addSpacing(10)
        for w in (self.zoom_out_button, self.zoom_label, self.zoom_in_button, self.fit_button):
            bar.addWidget(w)
        bar.addSpacing(10)
        bar.addWidget(QLabel("Min. score", self))
        for w in (self.slider, self.slider_label, self.below_check, self.labels_check):
            bar.addWidget(w)
        bar.addSpacing(10)
        bar.addWidget(self.draw_button)
        bar.addWidget(self.delete_button)
        bar.addStretch(1)
        self.legend = QWidget(self)
        self.legend.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Preferred)
        legend = QHBoxLayout(self.legend)
        legend.setContentsMargins(0, 0, 0, 0)
        for cls in BoxClass:
            mark = QLabel(self.legend)
            mark.setPixmap(swatch(COLOURS[cls], PEN_STYLES.get(cls, Qt.SolidLine)))
            legend.addWidget(mark)
            legend.addWidget(QLabel(cls.value, self.legend))
            legend.addSpacing(6)
        self.legend.setToolTip("Box colours: the moth / non-moth classifier's verdict; dashed "
                               "grey boxes score below the minimum; dash-dotted green boxes "
                               "were drawn by a person")
        legend_row = QHBoxLayout()
        legend_row.setContentsMargins(0, 0, 0, 0)
        legend_row.addWidget(self.legend)
        legend_row.addSpacing(12)
        legend_row.addWidget(self.edit_status, 1)
        rows.addLayout(legend_row)

    def _tool(self, text: str, tip: str) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        return b
