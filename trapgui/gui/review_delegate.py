"""Paints one occurrence of the review grid: its best crop, the final label, the machine's
score, and a coloured band saying what the person decided (nothing yet, confirmed,
relabelled, rejected, fixture; "carried" when the decision came from another model
configuration; "needs a look" when one could not be carried onto it)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from trapgui.gui.review_model import CROP_ROLE, ROW_ROLE

CROP = 136
PAD = 6
TEXT_LINES = 2
STATE_COLOURS = {
    None: QColor("#9aa0a6"),
    "confirmed": QColor("#2e7d32"),
    "relabelled": QColor("#1565c0"),
    "rejected": QColor("#c62828"),
    "fixture": QColor("#8d6e63"),
    "check": QColor("#e65100"),
}
STATE_TEXT = {None: "not reviewed", "confirmed": "✓ confirmed", "relabelled": "✎ relabelled",
              "rejected": "✗ not an insect", "fixture": "▣ fixture",
              "check": "⚠ needs a look"}


def state_of(r) -> str | None:
    if r.review_state is not None:
        return r.review_state
    if getattr(r, "needs_check", None):  # a decision from another configuration waits
        return "check"
    return "fixture" if r.fixture else None


class ReviewDelegate(QStyledItemDelegate):
    def sizeHint(self, option, index) -> QSize:
        line = option.fontMetrics.height()
        return QSize(CROP + 2 * PAD, CROP + 2 * PAD + TEXT_LINES * line + line + 4)

    def paint(self, painter: QPainter, option, index) -> None:
        r = index.data(ROW_ROLE)
        if r is None:
            return
        painter.save()
        rect = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        current = bool(option.state & QStyle.StateFlag.State_HasFocus)
        pal = option.palette
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        fill = QColor(pal.highlight().color())
        fill.setAlpha(60)  # the labels stay readable on a selected tile
        painter.setBrush(fill if selected else pal.base().color())
        painter.drawRoundedRect(rect, 6, 6)
        state = state_of(r)
        colour = STATE_COLOURS.get(state, STATE_COLOURS[None])
        # the crop
        crop_rect = QRect(rect.left() + PAD - 2, rect.top() + PAD - 2, CROP, CROP)
        crop = index.data(CROP_ROLE)
        if crop is not None and not crop.isNull():
            scaled = crop  # scaled once when it arrived (ReviewView), never per paint
            painter.drawPixmap(crop_rect.left() + (CROP - scaled.width()) // 2,
                               crop_rect.top() + (CROP - scaled.height()) // 2, scaled)
        else:
            painter.setBrush(pal.alternateBase().color())
            painter.drawRect(crop_rect)
            painter.setPen(pal.placeholderText().color())
            painter.drawText(crop_rect, Qt.AlignmentFlag.AlignCenter,
                             "no image" if crop is not None else "…")
        if state == "rejected":
            painter.setPen(QPen(colour, 3))
            painter.drawLine(crop_rect.topLeft(), crop_rect.bottomRight())
        # state band, frame
        painter.setPen(QPen(colour, 4 if state else 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 6, 6)
        if current:
            painter.setPen(QPen(pal.highlight().color(), 2, Qt.PenStyle.DashLine))
            painter.drawRoundedRect(rect.adjusted(4, 4, -4, -4), 5, 5)
        # text: final label (bold), then machine label and score, then the state
        fm = option.fontMetrics
        line = fm.height()
        text_rect = QRect(rect.left() + PAD, crop_rect.bottom() + 4, rect.width() - 2 * PAD, line)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(pal.text().color())
        label = r.final_label or ("—" if state == "rejected" else "unidentified")
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft,
                         fm.elidedText(label, Qt.TextElideMode.ElideRight, text_rect.width()))
        painter.setFont(option.font)
        text_rect.translate(0, line)
        painter.setPen(pal.placeholderText().color())
        machine = r.machine_label or "no machine label"
        score = f" {r.machine_score:.2f}" if r.machine_score is not None else ""
        prefix = "machine: " if r.review_state in ("relabelled", "rejected") else ""
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft,
                         fm.elidedText(f"{prefix}{machine}{score}", Qt.TextElideMode.ElideRight,
                                       text_rect.width()))
        text_rect.translate(0, line)
        painter.setPen(colour)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft,
                         fm.elidedText(f"{STATE_TEXT.get(state, state)} · {r.n_detections}×",
                                       Qt.TextElideMode.ElideRight, text_rect.width()))
        if getattr(r, "carried_from", None):
            self._carried_tag(painter, option, crop_rect, colour)
        painter.restore()

    @staticmethod
    def _carried_tag(painter: QPainter, option, crop_rect: QRect, colour: QColor) -> None:
        """A tag on the crop: the decision came from another model configuration."""
        small = QFont(option.font)
        small.setPointSizeF(max(6.0, option.font.pointSizeF() * 0.8))
        painter.setFont(small)
        text = "carried"
        fm = painter.fontMetrics()
        tag = QRect(crop_rect.left() + 4, crop_rect.top() + 4,
                    fm.horizontalAdvance(text) + 10, fm.height() + 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(tag, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
        painter.setFont(option.font)
