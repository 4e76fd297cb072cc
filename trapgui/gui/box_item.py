"""A detection drawn on the image: a rectangle in image pixels, a label that stays readable at
any zoom, a tooltip with everything known about the detection, and a colour per class.

The class colours are drawn on the photograph, not on the window, so they are fixed (chosen to
stand out on a white sheet and on dark insects) instead of palette roles.
"""

from __future__ import annotations

import enum
import html

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QGraphicsSimpleTextItem, QStyle

from trapgui.services.results_types import BoxInfo


class BoxClass(enum.Enum):
    MOTH = "moth"
    NON_MOTH = "non-moth"
    UNCLASSIFIED = "not classified"
    BELOW = "below threshold"
    HUMAN = "drawn by a person"


COLOURS = {
    BoxClass.MOTH: QColor("#ff9f1c"),
    BoxClass.NON_MOTH: QColor("#2e86ff"),
    BoxClass.UNCLASSIFIED: QColor("#c04cfd"),
    BoxClass.BELOW: QColor("#8d8d8d"),
    BoxClass.HUMAN: QColor("#00e08a"),
}
# how each class's outline is drawn: a person's box must read as a person's at a glance
PEN_STYLES = {BoxClass.BELOW: Qt.DashLine, BoxClass.HUMAN: Qt.DashDotLine}


def classify(info: BoxInfo, threshold: float) -> BoxClass:
    if info.is_human:
        return BoxClass.HUMAN
    if info.score < threshold:
        return BoxClass.BELOW
    moth = info.is_moth
    if moth is None:
        return BoxClass.UNCLASSIFIED
    return BoxClass.MOTH if moth else BoxClass.NON_MOTH


def short_label(info: BoxInfo, label_threshold: float) -> str:
    """What the box's caption says: the best label when the classifier was sure enough,
    otherwise the moth/non-moth verdict, with the score that goes with it. A person's box has
    no score: it says who drew it."""
    if info.is_human:
        return f"drawn by {info.drawn_by}" if info.drawn_by else "drawn by a person"
    if info.top_label and info.top_score is not None and info.top_score >= label_threshold \
            and info.top_rank != "binary":
        return f"{info.top_label} {info.top_score:.2f}"
    if info.is_moth is not None:
        word = "moth" if info.is_moth else "non-moth"
        score = info.binary_score if info.binary_score is not None else info.score
        return f"{word} {score:.2f}"
    return f"{info.score:.2f}"  # no classifier ran: the detector's score says it all


def tooltip(info: BoxInfo) -> str:
    b = info.box
    made = (f"Drawn by <b>{html.escape(info.drawn_by or 'a person')}</b> (a missed insect)"
            if info.is_human else
            f"Detector: {html.escape(info.detector)} — score {info.score:.3f}")
    lines = [f"<b>Detection {info.detection_id}</b>", made,
             f"Box: {b.x1:.0f}, {b.y1:.0f} → {b.x2:.0f}, {b.y2:.0f} "
             f"({b.width:.0f} × {b.height:.0f} px)"]
    for c in info.classifications:
        lines.append(f"{html.escape(c.rank.capitalize())} ({html.escape(c.model)}): "
                     f"<b>{html.escape(c.label)}</b> {c.score:.3f}")
        others = [f"{html.escape(lab)} {s:.2f}" for lab, s in
                  zip(c.top_labels, c.top_scores) if lab != c.label][:4]
        if others:
            lines.append("&nbsp;&nbsp;also: " + ", ".join(others))
    if info.occurrence_id is not None:
        lines.append(f"Occurrence {info.occurrence_id}")
    lines.append("<i>Delete: not an insect (delete this box) · right-click for more</i>")
    if not info.classifications and info.top_label:
        lines.append(f"Label: <b>{html.escape(info.top_label)}</b> "
                     f"{info.top_score or 0:.3f} ({info.top_rank or '?'})")
    return "<br>".join(lines)


class _Caption(QGraphicsSimpleTextItem):
    """The box's label on a chip of the box's colour, drawn above the box's top-left corner."""

    background = QColor()

    def boundingRect(self) -> QRectF:
        r = super().boundingRect()
        return r.adjusted(-2, -1, 2, 1).translated(0, -r.height() - 2)

    def paint(self, painter, option, widget=None):
        r = super().boundingRect()
        painter.save()
        painter.translate(0, -r.height() - 2)
        painter.fillRect(r.adjusted(-2, -1, 2, 1), self.background)
        super().paint(painter, option, widget)
        painter.restore()


class BoxItem(QGraphicsRectItem):
    """One detection. Its pen is cosmetic (same width on screen at any zoom)."""

    def __init__(self, info: BoxInfo):
        b = info.box
        super().__init__(QRectF(b.x1, b.y1, b.width, b.height))
        self.info = info
        self.box_class = BoxClass.MOTH
        self.setFlag(QGraphicsItem.ItemIsSelectable, True)
        self.setAcceptHoverEvents(True)
        self.setToolTip(tooltip(info))
        self.setZValue(1 + info.score)  # confident boxes on top of doubtful ones
        self.caption = _Caption(self)
        font = QFont()
        font.setPointSizeF(8.0)
        self.caption.setFont(font)
        self.caption.setFlag(QGraphicsItem.ItemIgnoresTransformations, True)
        self.caption.setBrush(QBrush(Qt.black))
        self.caption.setPos(b.x1, b.y1)
        self._caption_bg = QColor()
        self._show_labels = True

    def detach_caption(self) -> None:
        """Call after removing the box from its scene, before the last reference goes: the
        caption then dies as its own object. Deleting a removed box with its caption still a
        child crashed the app in Shiboken (a child wrapper released twice), reloading 5,000
        boxes after review actions (benchmarks/bench_review.py --window)."""
        if self.caption.parentItem() is self:
            self.caption.setParentItem(None)

    def restyle(self, threshold: float, label_threshold: float, show_labels: bool) -> None:
        self.box_class = classify(self.info, threshold)
        colour = COLOURS[self.box_class]
        selected = self.isSelected()
        pen = QPen(colour, 4.5 if selected else 2.0)
        pen.setCosmetic(True)
        pen.setStyle(PEN_STYLES.get(self.box_class, Qt.SolidLine))
        self.setPen(pen)
        fill = QColor(colour)
        fill.setAlpha(70 if selected else 0)
        self.setBrush(QBrush(fill) if selected else Qt.NoBrush)
        self.caption.setText(short_label(self.info, label_threshold))
        self._show_labels = show_labels
        self.caption.setVisible(show_labels or selected)
        self._caption_bg = colour
        self.caption.background = colour

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemSelectedHasChanged:
            pen = self.pen()
            pen.setWidthF(4.5 if value else 2.0)
            self.setPen(pen)
            fill = QColor(self._caption_bg)
            fill.setAlpha(70)
            self.setBrush(QBrush(fill) if value else Qt.NoBrush)
            self.setZValue((3 if value else 1) + self.info.score)
            self.caption.setVisible(self._show_labels or bool(value))
        return super().itemChange(change, value)

    def paint(self, painter, option, widget=None):
        # no dotted "selected" frame from Qt: the thicker pen and the fill say it
        option.state &= ~QStyle.State_Selected
        super().paint(painter, option, widget)
