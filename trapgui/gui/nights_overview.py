"""The Nights overview tab: one row per night of the selected trap(s), with how far
processing got, what was found (individuals first, from ``db.counts`` like ``trapgui
nights``; detections and MaxN beside them) and a bar chart of activity through the night."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QStyle, QStyledItemDelegate,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from trapgui.core import night_counts
from trapgui.gui.job_runner import job_runner

COLUMNS = ("Night", "First image", "Last image", "Images", "Processed", "Failed", "Unreadable",
           "Waiting", "Individuals", "MaxN", "Detections", "Species",
           "Activity through the night")
TIPS = ("The night is named by its evening date", "Capture time of the first image",
        "Capture time of the last image", night_counts.IMAGES, night_counts.PROCESSED,
        night_counts.FAILED, night_counts.UNREADABLE, night_counts.WAITING,
        "Individuals: insects tracked across the night's images (fixtures left out) with a "
        "detection at or above the detection threshold",
        "MaxN: the most individuals in any one image of the night",
        "Detections at or above the detection threshold (fixtures left out); an insect resting "
        "on the sheet is detected in many images",
        "Distinct species/orders among the individuals at or above the classification threshold",
        "Detections per hour, from the night's cut-off hour (left) to the next day's (right)")
FIRST_COUNT_COL, INDIVIDUALS_COL, LAST_COUNT_COL = 3, 8, 11
ACTIVITY_ROLE = Qt.ItemDataRole.UserRole + 10
NIGHT_ROLE = Qt.ItemDataRole.UserRole
ACTIVITY_COL = len(COLUMNS) - 1


class ActivityDelegate(QStyledItemDelegate):
    """24 hourly bars in the palette's highlight colour (readable in light and dark themes)."""

    def paint(self, painter: QPainter, option, index) -> None:
        super().paint(painter, option, index)
        bins = index.data(ACTIVITY_ROLE)
        if not bins or not max(bins):
            return
        painter.save()
        rect = option.rect.adjusted(4, 3, -4, -3)
        colour = option.palette.color(option.palette.ColorRole.Highlight)
        if option.state & QStyle.StateFlag.State_Selected:
            colour = option.palette.color(option.palette.ColorRole.HighlightedText)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        top = max(bins)
        width = rect.width() / len(bins)
        for i, value in enumerate(bins):
            h = int(rect.height() * value / top)
            if h:
                painter.drawRect(QRect(int(rect.left() + i * width), rect.bottom() - h + 1,
                                       max(1, int(width) - 1), h))
        painter.restore()


class NightsOverview(QWidget):
    nightActivated = Signal(int)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._summaries: list = []
        self._deployment_id: int | None = None
        self._night_ids: list[int] = []
        self.heading = QLabel("", self)
        self.heading.setObjectName("overviewHeading")
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("nightsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for col, tip in enumerate(TIPS):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.table.setToolTip("Double-click a night to select it and see its detections")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setItemDelegateForColumn(ACTIVITY_COL, ActivityDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(ACTIVITY_COL, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(True)
        self._shown_keys: list = []
        self._shown_heading = ""
        self.table.cellDoubleClicked.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.table, 1)
        self._activity_pending = False
        self._activity_timer = QTimer(self, singleShot=True, interval=1000)
        self._activity_timer.timeout.connect(self._load_activity)

    # the common results-view interface (see main_window)
    def set_selection(self, deployment_id: int | None, night_ids: list[int]) -> None:
        self._deployment_id = deployment_id
        self._night_ids = list(night_ids)
        self._shown_keys = []  # re-apply the row selection
        self._rebuild()

    def set_threshold(self, detection: float, classification: float) -> None:
        pass  # counts come with the summaries, which the tree reloads on threshold changes

    def refresh(self) -> None:
        self._activity_timer.start()

    def set_summaries(self, summaries: list) -> None:
        self._summaries = summaries
        self._rebuild()

    def _visible_deployments(self) -> list:
        if self._deployment_id is None:
            return list(self._summaries)
        return [d for d in self._summaries if d.id == self._deployment_id]

    def _rebuild(self) -> None:
        deps = self._visible_deployments()
        if not deps:
            self._set_heading("Select a trap on the left to see its nights.")
            self.table.setRowCount(0)
            self._shown_keys = []
            return
        if len(deps) == 1:
            d = deps[0]
            n_nights = len(d.night_ids)
            self._set_heading(
                f"<b>{d.name}</b> — {d.path}<br>{n_nights} night{'s' if n_nights != 1 else ''}"
                f" · {d.total('images'):,} images · {d.total('processed'):,} processed · "
                f"{d.total('failed'):,} failed · {d.total('unreadable'):,} unreadable · "
                f"{d.total('waiting'):,} waiting · "
                f"{d.total_individuals:,} individuals · {d.total('detections'):,} detections"
                f"{_threshold(d.nights)}")
        else:
            self._set_heading(f"<b>{len(deps)} traps</b> — "
                              f"{sum(d.total('images') for d in deps):,} images")
        nights = [n for d in deps for n in d.nights]
        counted = {n.night_id: d.of_night(n.night_id) for d in deps for n in d.nights}
        if nights:
            self._say_thresholds(nights[0].min_score, nights[0].min_label_score)
        keys = [n.night_id if n.night_id is not None else f"undated-{n.deployment_id}"
                for n in nights]
        if keys != self._shown_keys:
            self._new_rows(keys)
        # during a run this runs every second: only cells whose text changed are touched
        for row, n in enumerate(nights):
            c = counted[n.night_id]
            # detections that count but no individual yet: not tracked (see the trap tree)
            tracked = (n.night_id is not None and n.pipeline_id is not None
                       and not (n.detections > 0 and c.individuals == 0))
            values = [n.title.replace("Night of ", ""), _time(n.start), _time(n.end),
                      f"{n.images:,}", f"{n.processed:,}", f"{n.failed:,}" if n.failed else "",
                      f"{n.unreadable:,}" if n.unreadable else "",
                      f"{n.waiting:,}" if n.waiting else "",
                      f"{c.individuals:,}" if tracked else "–",
                      f"{c.max_n:,}" if tracked else "–",
                      f"{n.detections:,}", f"{c.taxa:,}" if tracked else "–"]
            for col, value in enumerate(values):
                item = self.table.item(row, col)
                if item.text() != value:
                    item.setText(value)
            tip = night_counts.breakdown(n.images, n.processed, n.failed, n.unreadable,
                                         n.waiting)
            if n.images:
                tip += f" ({100 * n.processed / n.images:.0f}% processed)"
            for col in range(FIRST_COUNT_COL, INDIVIDUALS_COL):
                if self.table.item(row, col).toolTip() != tip:
                    self.table.item(row, col).setToolTip(tip)
        if keys != self._shown_keys:
            self._shown_keys = keys
            for col in range(ACTIVITY_COL):  # the activity chart takes the rest (Stretch)
                self.table.resizeColumnToContents(col)
            selected = set(self._night_ids)
            if len(selected) < len(nights):
                for row, key in enumerate(keys):
                    if key in selected:
                        self.table.selectRow(row)
        self._load_activity()

    def _say_thresholds(self, detection: float, label: float) -> None:
        """The count columns' tips say the thresholds the counts came with."""
        said = {INDIVIDUALS_COL: f" (detection score ≥ {detection:.2f})",
                INDIVIDUALS_COL + 2: f" (score ≥ {detection:.2f})",
                INDIVIDUALS_COL + 3: f" (label score ≥ {label:.2f})"}
        for col, suffix in said.items():
            tip = TIPS[col] + suffix
            if self.table.horizontalHeaderItem(col).toolTip() != tip:
                self.table.horizontalHeaderItem(col).setToolTip(tip)

    def _set_heading(self, text: str) -> None:
        if text != self._shown_heading:
            self._shown_heading = text
            self.heading.setText(text)

    def _new_rows(self, keys: list) -> None:
        old = {self.table.item(r, 0).data(NIGHT_ROLE): self.table.item(r, ACTIVITY_COL)
               .data(ACTIVITY_ROLE) for r in range(self.table.rowCount())
               if self.table.item(r, 0) is not None}
        self.table.setRowCount(len(keys))
        for row, key in enumerate(keys):
            for col in range(len(COLUMNS)):
                item = QTableWidgetItem("")
                if FIRST_COUNT_COL <= col <= LAST_COUNT_COL:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
            self.table.item(row, 0).setData(NIGHT_ROLE, key)
            self.table.item(row, ACTIVITY_COL).setData(ACTIVITY_ROLE, old.get(key))

    def _load_activity(self) -> None:
        ids = [self.table.item(r, 0).data(NIGHT_ROLE) for r in range(self.table.rowCount())]
        ids = [i for i in ids if isinstance(i, int)][:500]
        if not ids or self._activity_pending:
            return
        self._activity_pending = True
        services = self._services
        job_runner().call(lambda: services.catalogue.hourly_activity(ids),
                          self._apply_activity, lambda exc: self._activity_failed(), context=self)

    def _activity_failed(self) -> None:
        self._activity_pending = False

    def _apply_activity(self, bins: dict) -> None:
        self._activity_pending = False
        for row in range(self.table.rowCount()):
            key = self.table.item(row, 0).data(NIGHT_ROLE)
            item = self.table.item(row, ACTIVITY_COL)
            if key in bins and item.data(ACTIVITY_ROLE) != bins[key]:
                item.setData(ACTIVITY_ROLE, bins[key])
                peak = max(bins[key])
                item.setToolTip(f"Peak: {peak} detections in one hour" if peak else
                                "No detections above the threshold yet")

    def _activated(self, row: int, _col: int) -> None:
        key = self.table.item(row, 0).data(NIGHT_ROLE)
        if isinstance(key, int):
            self.nightActivated.emit(key)


def _threshold(nights) -> str:
    return (f" (detection score ≥ {nights[0].min_score:.2f}, label score "
            f"≥ {nights[0].min_label_score:.2f})") if nights else ""


def _time(value) -> str:
    return f"{value:%d %b %H:%M}" if value else ""
