"""The main window: traps and nights on the left, result tabs in the centre, processing at
the bottom, status bar below. Everything slow (queries, scans, runs, model loading) happens
off the GUI thread; results views are refreshed live, at most once per second."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QDoubleSpinBox, QFileDialog, QFrame, QLabel,
                               QMainWindow, QMessageBox, QScrollArea, QStackedWidget, QTabWidget,
                               QToolBar, QVBoxLayout, QWidget)

from trapgui.core.errors import ModelNotInstalledError, TrapguiError, UserInputError
from trapgui.gui.drop_overlay import DropOverlay
from trapgui.gui.empty_state import EmptyState, ModelOfferBar
from trapgui.gui.error_dialog import show_error
from trapgui.gui.job_runner import job_runner
from trapgui.gui.nights_overview import NightsOverview
from trapgui.gui.processing_panel import ProcessingPanel
from trapgui.gui.resources import app_icon, resource_path
from trapgui.gui.regroup_controller import RegroupController
from trapgui.gui.run_controller import RunController
from trapgui.gui.scan_controller import ScanController
from trapgui.gui.status_bar import StatusBar
from trapgui.gui.trap_tree import TREE_DOCK_WIDTH, TrapTree
from trapgui.gui.unclassified_bar import UnclassifiedBar
from trapgui.services.processing_types import RunScope

log = logging.getLogger("trapgui.gui")
MODEL_CHECK_DELAY_MS = 2000


def _optional(module: str, cls: str):
    """A view class from another part of the GUI, or None while that part is not built."""
    name = f"trapgui.gui.{module}"
    try:
        return getattr(importlib.import_module(name), cls)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        log.warning("%s is not available in this build", name)
        return None


RUNNING_PANEL_HEIGHT = 200  # px: bar, counts, devices, log and the failure list


class MainWindow(QMainWindow):
    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.services = services
        self.setWindowTitle("trapgui — moth trap images")
        self.setWindowIcon(app_icon())
        self.setObjectName("mainWindow")
        self._close_when_idle = False
        self._ui = QSettings(str(services.paths.config_dir / "window.ini"),
                             QSettings.Format.IniFormat)

        self.controller = RunController(services, self)
        self.scanner = ScanController(services, self)
        self.regroup = RegroupController(services, self.controller, self.scanner, self)
        self._after_regroup: list[str] = []  # folders opened while the nights were regrouped
        self.tree = TrapTree(services, self)
        self.tree.actions.busy = lambda: self.controller.busy  # no trap removal during a run
        self.overview = NightsOverview(services, self)
        self.views: list[QWidget] = [self.overview]
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("centralTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.overview, "Nights overview")
        self.tabs.setTabToolTip(0, "Each night of the selected trap: progress, detections, "
                                   "species and activity through the night")
        self.detections = self._add_view("detections_view", "DetectionsView", "Detections",
                                         "Every detection, sortable and filterable; "
                                         "double-click to see it on its image")
        self.occurrences = self._add_view(
            "occurrences_view", "OccurrencesView", "Occurrences",
            "The individuals of the selected night (insects tracked across its images), each "
            "with its crops across frames")
        self.species = self._add_view("species_view", "SpeciesSummaryView", "Species summary",
                                      "Species (or orders) above the threshold, per night")
        self.viewer = self._add_view("image_viewer", "ImageViewer", "Image",
                                     "The image with its detection boxes")
        self.review = self._add_view("review_view", "ReviewView", "Review",
                                     "Confirm, relabel or reject one night's individuals "
                                     "from the keyboard")
        self.remote = None
        if services.available("remote"):
            remote_cls = _optional("remote_tab", "RemoteTab")
            if remote_cls is not None:
                self.remote = remote_cls(services, self.controller, self)
                # tall form: scroll rather than force the window taller than a laptop screen
                scroller = QScrollArea(self)
                scroller.setWidget(self.remote)
                scroller.setWidgetResizable(True)
                scroller.setFrameShape(QFrame.Shape.NoFrame)
                self._remote_index = self.tabs.addTab(scroller, "Remote jobs")
                self.tabs.setTabToolTip(self.tabs.count() - 1,
                                        "Process images for the Antenna platform")

        self.empty = EmptyState(self, remote=self.remote is not None)
        self.empty.openRequested.connect(self.open_folder_dialog)
        self.empty.remoteRequested.connect(self.show_remote_jobs)
        self.offer = ModelOfferBar(self)
        self.offer.openRequested.connect(self.open_model_manager)
        self.offer.dismissed.connect(lambda: self._ui.setValue("modelOfferDismissed", True))
        self.unclassified = UnclassifiedBar(services, self)  # boxes below the classification floor
        self.views.append(self.unclassified)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.tabs)
        centre = QWidget(self)
        lay = QVBoxLayout(centre)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.offer)
        lay.addWidget(self.unclassified)
        lay.addWidget(self.stack, 1)
        # the tabs' toolbars would otherwise claim ~1100 px and squeeze the tree to its minimum;
        # rows of controls that do not fit are clipped at the right, as in any narrow window
        centre.setMinimumWidth(640)
        self.setCentralWidget(centre)

        self.tree_dock = self._dock("Traps and nights", "trapsDock", self.tree,
                                    Qt.DockWidgetArea.LeftDockWidgetArea)
        self.panel = ProcessingPanel(services, self.controller, self)
        self.panel.modelsRequested.connect(self.open_model_manager)
        self.panel_dock = self._dock("Processing", "processingDock", self.panel,
                                     Qt.DockWidgetArea.BottomDockWidgetArea)
        self.status = StatusBar(services, self)
        self.setStatusBar(self.status)
        self.drop = DropOverlay(self)
        self._build_actions()
        self._build_threshold_bar()
        self._push_thresholds()
        self._wire()
        self._refresh_timer = QTimer(self, singleShot=True, interval=1000)
        self._refresh_timer.timeout.connect(self._refresh_views)
        # a person reviews several occurrences a second: the other views and the tree follow
        # at most once a second, not once per action (each refresh is a query on a worker
        # thread, holding the GIL the window needs)
        self._review_refresh_timer = QTimer(self, singleShot=True, interval=1000)
        self._review_refresh_timer.timeout.connect(self._refresh_after_review)
        self.resize(1280, 820)
        self.tree.setMinimumWidth(360)
        self.resizeDocks([self.panel_dock], [200], Qt.Orientation.Vertical)
        # wide enough for the tree's seven count columns (a minimum would widen the window)
        self.resizeDocks([self.tree_dock], [TREE_DOCK_WIDTH], Qt.Orientation.Horizontal)
        self._restore_geometry()
        # after the panel's layout has taken its shown/hidden lines into account
        self.panel.compactChanged.connect(
            lambda compact: QTimer.singleShot(0, self, lambda: self._panel_compact(compact)))
        QTimer.singleShot(0, self, lambda: self._panel_compact(self.panel.compact))

    # ---- construction helpers -----------------------------------------------------------
    def _add_view(self, module: str, cls: str, title: str, tip: str):
        view_cls = _optional(module, cls)
        if view_cls is None:
            return None
        view = view_cls(self.services, self)
        self.views.append(view)
        self.tabs.addTab(view, title)
        self.tabs.setTabToolTip(self.tabs.count() - 1, tip)
        return view

    def _dock(self, title, name, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, text, slot, shortcut=None, tip="") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text)
        action.setStatusTip(tip or text)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_action = self._action(file_menu, "&Open trap folder…", self.open_folder_dialog,
                                        QKeySequence.StandardKey.Open,
                                        "Index a trap folder (its images are grouped into nights)")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.setToolTipsVisible(True)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export…", self.open_export,
                                          "Ctrl+E", "Export the selected nights: detections, "
                                          "individuals, Camtrap DP, Darwin Core, MegaDetector "
                                          "JSON, the species × night matrix or crops")
        file_menu.addSeparator()
        self.quit_action = self._action(file_menu, "&Quit", self.close, "Ctrl+Q", "Quit trapgui")
        tools = bar.addMenu("&Tools")
        self.settings_action = self._action(tools, "&Settings…", self.open_settings, "Ctrl+,",
                                            "Models, devices, batch sizes, thresholds, folders")
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.models_action = self._action(tools, "&Models…", self.open_model_manager, "Ctrl+M",
                                          "Download, import, verify or remove models")
        run_menu = bar.addMenu("&Processing")
        self._action(run_menu, "&Process selection", lambda: self.start_processing("selection"),
                     "Ctrl+R", "Process the selected trap or nights")
        self.pause_action = self._action(run_menu, "Pause / &resume", self.controller.toggle_pause,
                                         "Ctrl+P", "Pause after the batch in hand, or continue "
                                         "(local and remote runs)")
        self.cancel_action = self._action(run_menu, "&Cancel", self.controller.cancel, "Ctrl+.",
                                          "Stop after the batch in hand; the rest stays queued "
                                          "(a remote run posts what it finished)")
        if self.remote is not None:
            run_menu.addSeparator()
            self.remote_action = self._action(
                run_menu, "Remote (&Antenna) jobs…", self.show_remote_jobs, None,
                "Process images for the Antenna platform: pull tasks, process them here and "
                "post the results (no trap folder needed)")
        self.controller.stateChanged.connect(self._run_state_changed)
        self._run_state_changed("idle")
        view_menu = bar.addMenu("&View")
        for dock, tip in ((self.tree_dock, "Show or hide the list of traps and nights"),
                          (self.panel_dock, "Show or hide the processing controls")):
            dock.toggleViewAction().setToolTip(tip)
            view_menu.addAction(dock.toggleViewAction())
        help_menu = bar.addMenu("&Help")
        self.help_action = self._action(help_menu, "trapgui &help", self.show_help,
                                        QKeySequence.StandardKey.HelpContents,
                                        "How to use trapgui")
        self.about_action = self._action(help_menu, "&About trapgui…", self.open_about, None,
                                         "Versions, devices and paths; copy diagnostics")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)

    def _build_threshold_bar(self) -> None:
        bar = QToolBar("Thresholds", self)
        bar.setObjectName("thresholdBar")
        bar.setMovable(False)
        s = self.services.settings
        self.det_spin = self._threshold_spin(s.detection_threshold,
                                             "Hide detections scoring below this (all scores are "
                                             "stored: changing it needs no re-run)")
        self.cls_spin = self._threshold_spin(s.classification_threshold,
                                             "Labels scoring below this count as uncertain")
        bar.addWidget(QLabel(" Detection ≥ "))
        bar.addWidget(self.det_spin)
        bar.addWidget(QLabel("  Classification ≥ "))
        bar.addWidget(self.cls_spin)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self._threshold_timer = QTimer(self, singleShot=True, interval=250)
        self._threshold_timer.timeout.connect(self._apply_thresholds)
        self.det_spin.valueChanged.connect(lambda _v: self._threshold_timer.start())
        self.cls_spin.valueChanged.connect(lambda _v: self._threshold_timer.start())

    def _push_thresholds(self) -> None:
        """Every view starts at the saved thresholds (the toolbar's): a view's own default
        (the viewer's slider at 0.50) must never show after a restart."""
        s = self.services.settings
        for view in self.views:
            view.set_threshold(s.detection_threshold, s.classification_threshold)

    def _threshold_spin(self, value: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(0.0, 1.0)
        spin.setSingleStep(0.05)
        spin.setDecimals(2)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _wire(self) -> None:
        self.drop.foldersDropped.connect(self.open_folders)
        self.tree.selectionChangedTo.connect(self._selection_changed)
        self.tree.loaded.connect(self._tree_loaded)
        self.overview.nightActivated.connect(self.tree.select_night)
        if self.detections is not None and self.viewer is not None:
            self.detections.openImageRequested.connect(self._open_image)
        if self.viewer is not None:  # the slider is the same threshold as the toolbar's
            self.viewer.thresholdChosen.connect(self.det_spin.setValue)
        if self.species is not None:
            self.species.showDetectionsRequested.connect(self._show_label)
        if self.occurrences is not None:  # a person's fixture decision changes the counts
            self.occurrences.countsChanged.connect(self._refresh_views)
        # a person's corrections change the boxes, the individuals and the counts; the view
        # that made one shows it already
        if self.viewer is not None:
            self.viewer.boxesEdited.connect(self._viewer_edited)
        if self.review is not None:
            self.review.actionApplied.connect(self._review_acted)
        embedded = getattr(self.occurrences, "viewer", None)  # its individual's image
        if embedded is not None:
            embedded.boxesEdited.connect(self._viewer_edited)
        self.scanner.scanStarted.connect(self._scan_started)
        self.scanner.progressed.connect(self.status.show_scan)
        self.scanner.tick.connect(self.tree.reload)
        self.scanner.scanFinished.connect(self._scan_finished)
        self.scanner.trapsScanned.connect(self._traps_scanned)
        self.scanner.choiceNeeded.connect(self._ask_trap_choice)
        self.scanner.scanFailed.connect(
            lambda folder, exc: show_error(self, f"Cannot open {Path(folder).name}", exc))
        self.scanner.allDone.connect(self._scans_done)
        self.status.scan_cancel.clicked.connect(self.scanner.cancel)
        self.panel.startRequested.connect(self.start_processing)
        self.controller.stateChanged.connect(self.status.set_queue_state)
        self.controller.progress.connect(self.status.show_progress)
        # local and remote results land in the catalogue alike: views refresh live
        self.controller.committed.connect(self._results_committed)
        self.unclassified.resultsChanged.connect(self._results_committed)
        self.controller.finished.connect(self._run_finished)
        self.controller.error.connect(self._run_error)
        self.regroup.message.connect(self.status.showMessage)
        self.regroup.done.connect(self._regrouped)

    # ---- startup ------------------------------------------------------------------------
    def start(self) -> None:
        """Called once the window is visible: load the catalogue and check for unfinished
        work and missing models, all in the background."""
        self.tree.reload()
        self.regroup.check_at_start()  # traps grouped with another cut-off hour
        services = self.services
        # a lambda: even touching services.processing imports its module
        job_runner().call(lambda: services.processing.unfinished(), self._offer_resume,
                          lambda exc: log.warning("resume check failed: %s", exc), context=self,
                          name="checking for unfinished work")
        # preloading torch and checking models and devices: let the window settle first (a big
        # import holds the GIL for long stretches)
        QTimer.singleShot(MODEL_CHECK_DELAY_MS, self._deferred_checks)

    def _deferred_checks(self) -> None:
        job_runner().call(self.services.preload, self._preloaded,
                          lambda exc: self._preloaded(), context=self,
                          name="preparing the models")

    def _preloaded(self, _result=None) -> None:
        from trapgui.gui.collector import freeze_long_lived_objects

        freeze_long_lived_objects()
        services = self.services
        job_runner().call(services.device_names, self.status.show_devices,
                          lambda exc: log.warning("device probe failed: %s", exc), context=self,
                          name="looking for compute devices")
        if self._ui.value("modelOfferDismissed", False, type=bool):
            return
        job_runner().call(lambda: services.models.species_installed(),
                          lambda ok: None if ok else self.offer.show(),
                          lambda exc: log.warning("model check failed: %s", exc),
                          context=self)

    def _offer_resume(self, count: int) -> None:
        if not count or self.controller.busy:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Unfinished processing",
                          f"{count:,} images from an earlier run were not processed yet.\n"
                          "Finish them now?", parent=self)
        box.setObjectName("resumeDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        resume = box.addButton("Resume processing", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(resume)
        box.finished.connect(lambda _r: box.clickedButton() is resume
                             and self.start_processing("resume"))
        box.open()

    # ---- folders ------------------------------------------------------------------------
    @Slot()
    def open_folder_dialog(self) -> None:
        start = (self.services.settings.recent_folders or [str(Path.home())])[0]
        folder = QFileDialog.getExistingDirectory(self, "Open trap folder", start)
        if folder:
            self.open_folders([folder])

    @Slot(list)
    def open_folders(self, folders: list) -> None:
        if self.regroup.busy:  # a scan would cut the trap's new images at the old hour
            self._after_regroup.extend(str(f) for f in folders)
            self.status.showMessage("The folder opens once the nights are regrouped…")
            return
        self._pending_select = folders[-1] if folders else None
        self.stack.setCurrentWidget(self.tabs)
        self.scanner.scan([str(f) for f in folders])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.services.settings.recent_folders
        if not recent:
            action = self.recent_menu.addAction("No recent folders")
            action.setEnabled(False)
        for folder in recent:
            action = self.recent_menu.addAction(Path(folder).name or folder)
            action.setToolTip(folder)
            action.triggered.connect(lambda _c=False, f=folder: self.open_folders([f]))

    def _scan_started(self, folder: str) -> None:
        self.status.show_scan(f"Scanning {Path(folder).name}…", 0, 0)

    def _scan_finished(self, report) -> None:
        text = (f"{Path(report.folder).name}: {report.found:,} images in {report.nights} "
                f"night{'s' if report.nights != 1 else ''}"
                f" ({report.added:,} new")
        text += f", {report.unreadable:,} unreadable" if report.unreadable else ""
        text += f", {report.undated:,} undated" if report.undated else ""
        text += ", scan stopped early)" if report.cancelled else ")"
        self.status.showMessage(text, 15000)
        self._select_after_load = report.deployment_id
        self.tree.select_deployment(report.deployment_id)  # when the tree has it already
        self.tree.reload()

    def _traps_scanned(self, traps) -> None:
        if traps.split or traps.notes:
            names = ", ".join(r.name for r in traps.reports)
            text = (f"{Path(traps.folder).name}: {len(traps.reports)} traps ({names})"
                    if traps.split else "")
            self.status.showMessage(" ".join([text] + traps.notes).strip(), 20000)

    @Slot(str, object)
    def _ask_trap_choice(self, folder: str, plan) -> None:
        from trapgui.gui.trap_choice_dialog import TrapChoiceDialog

        self.status.show_scan(f"{Path(folder).name}: one trap or one per site?", 0, 0)
        dialog = TrapChoiceDialog(Path(folder).name or folder, plan, self)
        dialog.answered.connect(self._trap_choice_answered)
        dialog.open()

    @Slot(str, bool)
    def _trap_choice_answered(self, choice: str, remember: bool) -> None:
        if remember:
            self.services.settings.site_subfolders = choice
            job_runner().call(self.services.save_settings, context=self)
        self.scanner.answer(choice)

    def _scans_done(self) -> None:
        self.status.hide_scan()

    @Slot()
    def show_remote_jobs(self) -> None:
        """The Remote jobs tab, also before any trap exists (it needs none)."""
        if self.remote is None:
            return
        self._remote_shown = True
        self.stack.setCurrentWidget(self.tabs)
        self.tabs.setCurrentIndex(self._remote_index)

    _remote_shown = False

    @Slot(list)
    def _tree_loaded(self, summaries: list) -> None:
        has_traps = bool(summaries)
        if has_traps or self.scanner.busy or self._remote_shown:
            self.stack.setCurrentWidget(self.tabs)
        else:
            self.stack.setCurrentWidget(self.empty)
        self.overview.set_summaries(summaries)
        dep = getattr(self, "_select_after_load", None)
        if dep is not None:
            self._select_after_load = None
            self.tree.select_deployment(dep)

    # ---- selection, thresholds, refresh ----------------------------------------------------
    @Slot(object, list)
    def _selection_changed(self, deployment_id, night_ids: list) -> None:
        for view in self.views:
            view.set_selection(deployment_id, list(night_ids))

    def _apply_thresholds(self) -> None:
        s = self.services.settings
        s.detection_threshold = round(self.det_spin.value(), 4)
        s.classification_threshold = round(self.cls_spin.value(), 4)
        job_runner().call(self.services.save_settings, context=self)
        for view in self.views:
            view.set_threshold(s.detection_threshold, s.classification_threshold)
        self.tree.schedule_reload()

    @Slot(list, int)
    def _results_committed(self, _image_ids: list, _detections: int) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _refresh_views(self, *, besides: QWidget | None = None) -> None:
        for view in self.views:
            if view is not besides:
                view.refresh()
        self.tree.reload()

    def _viewer_edited(self, _outcome) -> None:
        # the viewer that made it shows it already (the Occurrences tab's own viewer is
        # refreshed with its tab: its individuals changed)
        self._refresh_views(besides=self.viewer if self.sender() is self.viewer else None)

    def _review_acted(self, _outcome) -> None:
        if not self._review_refresh_timer.isActive():
            self._review_refresh_timer.start()

    def _refresh_after_review(self) -> None:
        self._refresh_views(besides=self.review)

    def _open_image(self, image_id: int, detection_id: int) -> None:
        self.viewer.show_image(image_id, detection_id)
        self.tabs.setCurrentWidget(self.viewer)

    def _show_label(self, label: str) -> None:
        if self.detections is None:
            return
        setter = getattr(self.detections, "filter_label", None)
        if setter is not None:
            setter(label)
        self.tabs.setCurrentWidget(self.detections)

    # ---- processing ---------------------------------------------------------------------
    @Slot(str, list)
    def start_processing(self, kind: str, files: list | None = None) -> None:
        if self.controller.busy:
            return
        if self.regroup.busy:  # the selection's nights are being replaced
            show_error(self, "Nights are being regrouped", UserInputError(
                "The traps' nights are being regrouped to the new cut-off hour; start "
                "processing again once the status bar says they are done."))
            return
        if kind == "resume":
            self.controller.start(RunScope(description="the images left from an earlier run"))
            return
        if kind == "images":
            services = self.services
            job_runner().call(lambda: services.catalogue.image_ids_for_files(files or []),
                              self._start_images,
                              lambda exc: show_error(self, "Cannot process these images", exc),
                              context=self)
            return
        dep, nights = self.tree.selection()
        if kind == "selection":
            kind = self.tree.selected_scope()
        if dep is None and not nights:
            show_error(self, "Nothing selected", UserInputError(
                "Select a trap or one or more nights on the left first.",
                hint="Open a trap folder (File ▸ Open) if the list is empty."))
            return
        if kind == "trap":
            deps = sorted({d for d in ([dep] if dep is not None else
                                       [s.id for s in self.tree.summaries])})
            names = [s.name for s in self.tree.summaries if s.id in deps]
            scope = RunScope(deployment_ids=tuple(deps), include_undated=True,
                             description=", ".join(names))
        else:
            count = len(nights) + (1 if self.tree.includes_undated() else 0)
            scope = RunScope(deployment_ids=(dep,) if dep is not None else (),
                             night_ids=tuple(nights),
                             include_undated=self.tree.includes_undated(),
                             description=f"{count} selected night{'s' if count != 1 else ''}")
        self.controller.start(scope)

    def _start_images(self, found) -> None:
        ids, missing = found
        if missing:
            show_error(self, "Images not in the catalogue", UserInputError(
                f"{len(missing)} of the chosen files are not in an opened trap folder "
                f"(for example {Path(missing[0]).name}).",
                hint="Open their trap folder first (File ▸ Open), then choose them again."))
            if not ids:
                return
        self.controller.start(RunScope(image_ids=tuple(ids),
                                       description=f"{len(ids)} chosen image(s)"))

    def _panel_compact(self, compact: bool) -> None:
        """The processing dock takes what its lines need while idle, more while a run is on."""
        if self.panel_dock.isFloating() or compact != self.panel.compact:
            return
        self.panel.layout().activate()
        need = self.panel.sizeHint().height() + 8
        self.resizeDocks([self.panel_dock], [need if compact else max(need, RUNNING_PANEL_HEIGHT)],
                         Qt.Orientation.Vertical)

    def _run_state_changed(self, state: str) -> None:
        self.pause_action.setEnabled(state in ("starting", "running", "paused"))
        self.cancel_action.setEnabled(state in ("starting", "running", "paused"))

    def _run_finished(self, _summary) -> None:
        self._refresh_views()
        if self._close_when_idle:
            self.close()

    def _run_error(self, exc: BaseException) -> None:
        if not isinstance(exc, TrapguiError):
            return  # a bug: the job runner has logged it and shown it already
        if isinstance(exc, ModelNotInstalledError):
            box = show_error(self, "A model is missing", exc)
            box.finished.connect(lambda _r: self.open_model_manager(exc.key))
            return
        show_error(self, "Processing stopped", exc)

    # ---- dialogs ------------------------------------------------------------------------
    def open_settings(self) -> None:
        from trapgui.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.services, self)
        dialog.applied.connect(self._settings_applied)
        dialog.open()

    def _settings_applied(self) -> None:
        s = self.services.settings
        self.det_spin.setValue(s.detection_threshold)
        self.cls_spin.setValue(s.classification_threshold)
        self.status.device_label.setText(f"Device: {s.device}")
        self.tree.schedule_reload()
        self.regroup.check_at_start()  # a changed "Night starts at" applies to every trap

    def _regrouped(self, sentence: str) -> None:
        self.status.showMessage(sentence, 60000)
        self._refresh_views()
        folders, self._after_regroup = self._after_regroup, []
        if folders:
            self.open_folders(folders)

    def open_model_manager(self, highlight: str | None = None) -> None:
        from trapgui.gui.model_manager import ModelManager

        dialog = ModelManager(self.services, self, highlight=highlight or None)
        dialog.open()

    def open_about(self) -> None:
        from trapgui.gui.about_dialog import AboutDialog

        AboutDialog(self.services, self).open()

    def open_export(self) -> None:
        export_cls = _optional("export_dialog", "ExportDialog")
        if export_cls is None:
            show_error(self, "Export", UserInputError("Export is not available in this build."))
            return
        _dep, nights = self.tree.selection()  # nothing selected: every night of every trap
        s = self.services.settings
        dialog = export_cls(self.services, nights,
                            (s.detection_threshold, s.classification_threshold), self)
        dialog.open()

    def show_help(self) -> None:
        guide = resource_path("../README.md").resolve()
        box = QMessageBox(QMessageBox.Icon.Information, "trapgui help", _HELP, parent=self)
        box.setObjectName("helpDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if guide.exists():
            button = box.addButton("Open the user guide", QMessageBox.ButtonRole.ActionRole)
            button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(guide))))
        box.addButton(QMessageBox.StandardButton.Close)
        box.open()

    # ---- geometry and closing -----------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry = self._ui.value("geometry")
        state = self._ui.value("windowState")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not getattr(self, "_tree_sized", False):
            self._tree_sized = True
            if not isinstance(self._ui.value("windowState"), QByteArray):
                # before the first show the dock's width is its minimum whatever was asked;
                # once laid out, wide enough for the tree's count columns
                QTimer.singleShot(0, self._size_tree_dock)

    def _size_tree_dock(self) -> None:
        want = min(TREE_DOCK_WIDTH, self.width() * 9 // 20)
        self.resizeDocks([self.tree_dock], [want], Qt.Orientation.Horizontal)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.drop.isVisible():
            self.drop.setGeometry(self.rect())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.controller.busy:
            event.ignore()
            if not self._close_when_idle:
                self._confirm_close()
            return
        self.scanner.cancel()
        self._ui.setValue("geometry", self.saveGeometry())
        self._ui.setValue("windowState", self.saveState())
        self._ui.sync()
        event.accept()

    def _confirm_close(self) -> None:
        if self.controller.kind == "remote":
            text = ("An Antenna job is being processed. Stop and quit?\n\nThe tasks in hand "
                    "are finished and their results posted; results that cannot be posted now "
                    "are kept and sent next time.")
        else:
            text = ("Images are being processed. Stop and quit?\n\nThe batch in hand is "
                    "finished and saved; the remaining images stay queued and you can resume "
                    "them next time.")
        box = QMessageBox(QMessageBox.Icon.Question, "Processing is running", text, parent=self)
        box.setObjectName("confirmCloseDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        stop = box.addButton("Stop and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Keep processing", QMessageBox.ButtonRole.RejectRole)
        box.finished.connect(lambda _r: self._close_confirmed() if box.clickedButton() is stop
                             else None)
        box.open()

    def _close_confirmed(self) -> None:
        self._close_when_idle = True
        self.status.showMessage("Finishing the batch in hand, then quitting…")
        self.controller.cancel()
        if not self.controller.busy:
            self.close()


_HELP = """<h3>Using trapgui</h3>
<ol>
<li><b>Open a trap folder</b>: drag it onto the window (several at once is fine) or use
File ▸ Open (Ctrl+O). Images are grouped into nights (noon to noon by default).</li>
<li><b>Choose models</b> in Tools ▸ Settings (Ctrl+,); download or import them in
Tools ▸ Models.</li>
<li><b>Process</b>: select a trap or nights on the left and press <i>Process selection</i>
(Ctrl+R). Pause, resume or cancel at any time; nothing is lost.</li>
<li><b>Browse</b> the Detections and Species tabs while it runs; double-click a detection to
see it on its image. Thresholds in the toolbar apply instantly.</li>
<li><b>Export</b> the selected nights with File ▸ Export (Ctrl+E): CSV, Camtrap DP, Darwin Core, MegaDetector JSON or crops.</li>
</ol>"""
