"""Left pane: traps (deployments) and their nights, with images / processed / failed /
unreadable / individuals / detections / species counts (the image counts add up:
``core.night_counts``) (individuals and species from ``db.counts``, the numbers of
``trapgui nights`` and the exports). Counts load off the GUI thread; reloads are coalesced so a flood of "results
changed" notifications costs at most one query at a time."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from trapgui.core import night_counts
from trapgui.gui.job_runner import job_runner
from trapgui.gui.trap_actions import TrapActions

KIND_ROLE = Qt.ItemDataRole.UserRole
ID_ROLE = Qt.ItemDataRole.UserRole + 1
DEP_ROLE = Qt.ItemDataRole.UserRole + 2
COLUMNS = ("Trap / night", "Images", "Processed", "Failed", "Unreadable", "Individuals",
           "Detections", "Species")
IMAGES_COL, PROCESSED_COL, FAILED_COL, UNREADABLE_COL = 1, 2, 3, 4
INDIVIDUALS_COL, DETECTIONS_COL, SPECIES_COL = 5, 6, 7
# short headers keep all eight columns legible at the tree's default width (500 px); the
# header tips say each in full
TREE_DOCK_WIDTH = 560  # what the main window gives the tree at first
HEADERS = ("Trap / night", "Images", "Done", "Failed", "Unread.", "Indiv.", "Detect.",
           "Species")
TIPS = ("Trap folders and the nights found in them (a night runs from the cut-off hour, noon by "
        "default, to the same hour next day)",
        f"{night_counts.IMAGES}. A row's tip gives its own sum.",
        f"Processed: {night_counts.PROCESSED[0].lower()}{night_counts.PROCESSED[1:]}",
        f"Failed: {night_counts.FAILED[0].lower()}{night_counts.FAILED[1:]}",
        f"Unreadable: {night_counts.UNREADABLE[0].lower()}{night_counts.UNREADABLE[1:]}",
        "Individuals: insects tracked across the night's images (fixtures left out) with a "
        "detection at or above the detection threshold",
        "Detections at or above the detection threshold (fixtures left out); one insect "
        "resting on the sheet is detected in many images",
        "Distinct species or orders among the individuals at or above the classification "
        "threshold")


class TrapTree(QWidget):
    """Emits ``selectionChangedTo(deployment_id or None, night_ids)``."""

    selectionChangedTo = Signal(object, list)
    loaded = Signal(list)  # the DeploymentSummary list after each reload

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._loading = False
        self._again = False
        self.summaries: list = []
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("trapTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(HEADERS)
        for col, tip in enumerate(TIPS):
            self.tree.headerItem().setToolTip(col, tip)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setToolTip("Select a trap or one or more nights (Ctrl/Shift-click) to show "
                             "and process them")
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setMinimumSectionSize(48)
        self._sized_rows = -1
        self.tree.itemSelectionChanged.connect(self._emit_selection)
        self.actions = TrapActions(services, self)
        self.actions.changed.connect(self.reload)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._debounce = QTimer(self, singleShot=True, interval=300)
        self._debounce.timeout.connect(self.reload)

    # ---- loading ------------------------------------------------------------------------
    def schedule_reload(self) -> None:
        """Reload soon; many calls within the debounce interval make one query."""
        if not self._debounce.isActive():
            self._debounce.start()

    def reload(self) -> None:
        if self._loading:
            self._again = True
            return
        self._loading = True
        services = self._services
        # a lambda: touching services.catalogue here would import SQLAlchemy on the GUI thread
        job_runner().call(lambda: services.catalogue.tree(), self._apply, self._failed,
                          context=self)

    def _failed(self, exc: BaseException) -> None:
        self._loading = False
        from trapgui.gui.error_dialog import show_error

        show_error(self, "Cannot read the catalogue", exc)

    def _apply(self, summaries: list) -> None:
        self._loading = False
        if summaries == self.summaries and self.tree.topLevelItemCount():
            self._reload_again()
            return  # nothing changed (frozen dataclasses compare by value)
        self.summaries = summaries
        self._say_thresholds(summaries)
        self.tree.blockSignals(True)
        before = self._selected_keys()
        first_load = self.tree.topLevelItemCount() == 0
        existing = {self._key(self.tree.topLevelItem(i)): self.tree.topLevelItem(i)
                    for i in range(self.tree.topLevelItemCount())}
        seen = set()
        for index, dep in enumerate(summaries):
            key = ("deployment", dep.id)
            seen.add(key)
            item = existing.get(key)
            if item is None:
                item = QTreeWidgetItem()
                item.setData(0, KIND_ROLE, "deployment")
                item.setData(0, ID_ROLE, dep.id)
                item.setData(0, DEP_ROLE, dep.id)
                self.tree.insertTopLevelItem(index, item)
                item.setExpanded(True)
            self._fill(item, dep.name, _image_counts(dep.nights), dep.total_individuals,
                       dep.total("detections"), None, tooltip=dep.tooltip or dep.path)
            self._sync_nights(item, dep)
        for key, item in existing.items():
            if key not in seen:
                self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
        self._restore(before)
        rows = sum(1 + self.tree.topLevelItem(i).childCount()
                   for i in range(self.tree.topLevelItemCount()))
        if rows != self._sized_rows:  # fit columns when rows come or go, not on every count
            self._sized_rows = rows
            for col in range(len(COLUMNS)):
                self.tree.resizeColumnToContents(col)
        if first_load and not before and self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self.tree.blockSignals(False)
        if self._selected_keys() != before:
            self._emit_selection()
        self.loaded.emit(summaries)
        self._reload_again()

    def _say_thresholds(self, summaries: list) -> None:
        """The column tips say which thresholds the counts used (they come with the counts)."""
        row = next((n for d in summaries for n in d.nights), None)
        if row is None:
            return
        header = self.tree.headerItem()
        header.setToolTip(INDIVIDUALS_COL, "Individuals: insects tracked across the night's "
                          "images (fixtures left out) with a detection scoring "
                          f"≥ {row.min_score:.2f} (the detection threshold); MaxN, the most "
                          "in one image, in each night's tip")
        header.setToolTip(DETECTIONS_COL, f"Detections scoring ≥ {row.min_score:.2f} (the "
                          "detection threshold), fixtures left out")
        header.setToolTip(SPECIES_COL, "Distinct species or orders among the individuals whose "
                          f"label scores ≥ {row.min_label_score:.2f} (the classification "
                          "threshold)")

    def _reload_again(self) -> None:
        if self._again:
            self._again = False
            self.reload()

    def _sync_nights(self, parent: QTreeWidgetItem, dep) -> None:
        existing = {self._key(parent.child(i)): parent.child(i) for i in range(parent.childCount())}
        wanted = []
        for night in dep.nights:
            key = ("night", night.night_id if night.night_id is not None
                   else f"undated-{dep.id}")
            wanted.append(key)
            item = existing.get(key)
            if item is None:
                item = QTreeWidgetItem()
                item.setData(0, KIND_ROLE, "night")
                item.setData(0, ID_ROLE, key[1])
                item.setData(0, DEP_ROLE, dep.id)
                parent.addChild(item)
            tip = night.title
            if night.start and night.end:
                tip += f"\n{night.start:%d %b %H:%M} – {night.end:%d %b %H:%M}"
            if night.night_id is None:
                tip += "\nImages without a usable capture time (see their time errors)"
            if night.unreadable:
                tip += f"\n{night.unreadable} unreadable image(s)"
            label = "Undated images" if night.date is None else f"{night.date:%a %d %b %Y}"
            counted = dep.of_night(night.night_id)
            # detections that count but no individual: the night is not tracked yet (it is
            # once its processing completes); "0" beside them would read as "nothing there"
            untracked = night.detections > 0 and counted.individuals == 0
            if night.night_id is not None and night.pipeline_id is not None:
                tip += ("\nNot tracked yet: its individuals are counted once the night's "
                        "images are processed" if untracked else
                        f"\n{counted.individuals:,} individuals (MaxN {counted.max_n:,}: most "
                        f"in one image), {night.detections:,} detections")
            self._fill(item, label, _image_counts([night]),
                       None if night.night_id is None or untracked else counted.individuals,
                       night.detections, counted.taxa, tooltip=tip)
        for key, item in existing.items():
            if key not in wanted:
                parent.removeChild(item)
        # keep the children in the summaries' (date) order
        order = {key: i for i, key in enumerate(wanted)}
        items = [parent.takeChild(0) for _ in range(parent.childCount())]
        items.sort(key=lambda it: order.get(self._key(it), 0))
        parent.addChildren(items)

    @staticmethod
    def _fill(item, name, counts, individuals, detections, species, tooltip="") -> None:
        # only touch what changed: during a run this is called every second for every row,
        # and each Qt call may have to win the GIL back from the workers
        images, processed, failed, unreadable, waiting = counts
        texts = (name, f"{images:,}", f"{processed:,}", f"{failed:,}" if failed else "",
                 f"{unreadable:,}" if unreadable else "",
                 "–" if individuals is None else f"{individuals:,}",
                 f"{detections:,}", "" if species is None else f"{species:,}")
        fresh = item.text(1) == ""
        for col, text in enumerate(texts):
            if item.text(col) != text:
                item.setText(col, text)
        pct = f" ({100 * processed / images:.0f}% processed)" if images else ""
        sums = night_counts.breakdown(images, processed, failed, unreadable, waiting) + pct
        tips = (tooltip, sums, sums, sums, sums)
        for col, tip in zip((0, IMAGES_COL, PROCESSED_COL, FAILED_COL, UNREADABLE_COL), tips):
            if item.toolTip(col) != tip:
                item.setToolTip(col, tip)
        if fresh:
            for col in range(1, len(COLUMNS)):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    # ---- the context menu -----------------------------------------------------------------
    def trap_at(self, item) -> tuple[int, str] | None:
        """(trap id, name) of a trap row or of a night's trap."""
        if item is None:
            return None
        top = item if item.parent() is None else item.parent()
        return top.data(0, DEP_ROLE), top.text(0)

    def _context_menu(self, pos) -> None:
        found = self.trap_at(self.tree.itemAt(pos))
        if found is not None:
            self.actions.menu(*found).popup(self.tree.viewport().mapToGlobal(pos))

    # ---- selection ----------------------------------------------------------------------
    @staticmethod
    def _key(item):
        return (item.data(0, KIND_ROLE), item.data(0, ID_ROLE))

    def _selected_keys(self) -> list:
        return [self._key(i) for i in self.tree.selectedItems()]

    def _restore(self, keys: list) -> None:
        wanted = set(keys)
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            top.setSelected(self._key(top) in wanted)
            for j in range(top.childCount()):
                top.child(j).setSelected(self._key(top.child(j)) in wanted)

    def selection(self) -> tuple[int | None, list[int]]:
        """(deployment id, night ids); a selected trap means all its nights."""
        items = self.tree.selectedItems()
        if not items:
            return None, []
        deps = {i.data(0, DEP_ROLE) for i in items}
        dep = deps.pop() if len(deps) == 1 else None
        nights: list[int] = []
        for item in items:
            if item.data(0, KIND_ROLE) == "deployment":
                summary = next((d for d in self.summaries if d.id == item.data(0, ID_ROLE)), None)
                nights.extend(summary.night_ids if summary else [])
            elif isinstance(item.data(0, ID_ROLE), int):
                nights.append(item.data(0, ID_ROLE))
        return dep, sorted(set(nights))

    def selected_scope(self) -> str:
        """"trap" when whole traps are selected, else "nights"."""
        kinds = {i.data(0, KIND_ROLE) for i in self.tree.selectedItems()}
        return "trap" if kinds == {"deployment"} else "nights"

    def includes_undated(self) -> bool:
        return any(isinstance(i.data(0, ID_ROLE), str) for i in self.tree.selectedItems())

    def select_night(self, night_id: int) -> None:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, ID_ROLE) == night_id:
                    self.tree.setCurrentItem(top.child(j))
                    return

    def select_deployment(self, deployment_id: int) -> None:
        for i in range(self.tree.topLevelItemCount()):
            if self.tree.topLevelItem(i).data(0, ID_ROLE) == deployment_id:
                self.tree.setCurrentItem(self.tree.topLevelItem(i))
                return

    def _emit_selection(self) -> None:
        dep, nights = self.selection()
        self.selectionChangedTo.emit(dep, nights)


def _image_counts(nights) -> tuple[int, int, int, int, int]:
    """(images, processed, failed, unreadable, waiting) of some nights (``NightRow``s)."""
    return (sum(n.images for n in nights), sum(n.processed for n in nights),
            sum(n.failed for n in nights), sum(n.unreadable for n in nights),
            sum(n.waiting for n in nights))
