"""Paints one occurrence of the review grid: its best crop, the final label, the machine's
score, and a coloured band saying what the person decided (nothing yet, confirmed,
relabelled, rejected, fixture; "carried" when the decision came from another model
configuration; "needs a look" when one could not be carried onto it)."""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from trapgui.gui.review_model import CROP_ROLE, ROW_ROLE

CROP = 136
PAD = 6
TEXT_LINES = 2
# painted tiles kept (some 110 KB each at 1x): a screenful several times over
TILE_CACHE_BYTES = 48 * 1024 * 1024
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
    """Each tile's contents (crop, labels, state) are drawn once into a pixmap and reused
    until the row or its crop changes: moving the cursor, selecting and scrolling back
    repaint a tile with a few calls instead of some forty (each PySide call releases and
    retakes the GIL, which a saving thread may hold). Selection and the cursor are drawn
    live, around the pixmap."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._tiles: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (row, crop, pixmap)
        self._tile_bytes = 0
        self._look = None  # (unselected fill, selected fill, cursor pen) of the palette

    def forget_look(self) -> None:
        """The palette, font, style or screen changed (``ReviewGrid.changeEvent``): every
        tile is drawn anew."""
        self._tiles.clear()
        self._tile_bytes = 0
        self._look = None

    def sizeHint(self, option, index) -> QSize:
        line = option.fontMetrics.height()
        return QSize(CROP + 2 * PAD, CROP + 2 * PAD + TEXT_LINES * line + line + 4)

    def paint(self, painter: QPainter, option, index) -> None:
        model = index.model()
        tile = getattr(model, "tile", None)
        r, crop = tile(index.row()) if tile is not None else (index.data(ROW_ROLE),
                                                              index.data(CROP_ROLE))
        if r is None:
            return
        if self._look is None:
            pal = option.palette
            selected = QColor(pal.highlight().color())
            selected.setAlpha(60)  # the labels stay readable on a selected tile
            self._look = (pal.base().color(), selected,
                          QPen(pal.highlight().color(), 2, Qt.PenStyle.DashLine))
        base, selected, cursor = self._look
        rect = option.rect.adjusted(2, 2, -2, -2)
        state = option.state
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(selected if state & QStyle.StateFlag.State_Selected else base)
        painter.drawRoundedRect(rect, 6, 6)
        painter.drawPixmap(rect.topLeft(), self._tile(r, crop, option, rect, painter))
        if state & QStyle.StateFlag.State_HasFocus:  # the current one
            painter.setPen(cursor)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(4, 4, -4, -4), 5, 5)
        painter.restore()

    def _tile(self, r, crop, option, rect: QRect, painter: QPainter) -> QPixmap:
        dpr = painter.device().devicePixelRatioF()
        key = (id(r), -1 if crop is None else crop.cacheKey(), rect.width(), rect.height(), dpr)
        hit = self._tiles.get(key)
        if hit is not None:  # the entry holds the row and crop: their ids are not reused
            self._tiles.move_to_end(key)
            return hit[2]
        tile = QPixmap(round(rect.width() * dpr), round(rect.height() * dpr))
        tile.setDevicePixelRatio(dpr)
        tile.fill(Qt.GlobalColor.transparent)
        tile_painter = QPainter(tile)
        try:
            self._draw_contents(tile_painter, option, r, crop,
                                QRect(0, 0, rect.width(), rect.height()))
        finally:
            tile_painter.end()
        self._tiles[key] = (r, crop, tile)
        self._tile_bytes += tile.width() * tile.height() * 4
        while self._tile_bytes > TILE_CACHE_BYTES and len(self._tiles) > 1:
            _key, (_r, _c, old) = self._tiles.popitem(last=False)
            self._tile_bytes -= old.width() * old.height() * 4
        return tile

    def _draw_contents(self, painter: QPainter, option, r, crop, rect: QRect) -> None:
        """Everything of a tile but its background, selection and cursor."""
        pal = option.palette
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        state = state_of(r)
        colour = STATE_COLOURS.get(state, STATE_COLOURS[None])
        # the crop
        crop_rect = QRect(rect.left() + PAD - 2, rect.top() + PAD - 2, CROP, CROP)
        if crop is not None and not crop.isNull():
            scaled = crop  # scaled once when it arrived (ReviewView), never per paint
            painter.drawPixmap(crop_rect.left() + (CROP - scaled.width()) // 2,
                               crop_rect.top() + (CROP - scaled.height()) // 2, scaled)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
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
