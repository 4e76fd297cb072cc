"""Screenshots of every main view, taken from the real app running offscreen.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--side 2048] [--dark]

Copies the shared trap images (downscaled so the longest side is --side pixels, EXIF kept) into
a temporary trap folder per trap, opens them in the real main window as a user would (the
folders are opened together, scanned in the background), processes them with the built-in
detector through the run controller, and saves:

    main-window.png        traps, nights and the nights overview
    processing.png         the processing panel during the run
    detections.png         the detections table
    image-viewer.png       an image with its boxes, legend, slider and crop strip
    image-viewer-human-box.png  the viewer with a box a person drew (B, drag)
    species-summary.png    individuals per taxon with the best crop of each
    occurrences.png        the individuals of a night, one with its crops across frames
    export.png             the export dialog after an export (individuals CSV)
    export-camtrap.png     the export dialog with Camtrap DP chosen: its options, and the
                           sentence that says what the trap still lacks
    settings.png           Tools ▸ Settings
    model-manager.png      Tools ▸ Models

Only the built-in detector runs (classifier weights cannot be downloaded here), so the boxes
are "not classified" and the species summary has one row. With --dark the window uses a dark
palette (to check that every colour reads in both themes); files get a "-dark" suffix.
The user's own settings and database are never touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "trap-images"


def copy_downscaled(src_root: Path, dst_root: Path, side: int) -> list[Path]:
    from tests.image_files import save_downscaled

    traps = []
    for trap in sorted(p for p in src_root.iterdir() if p.is_dir()):
        for src in sorted(trap.iterdir()):
            if src.suffix.lower() not in (".jpg", ".jpeg"):
                continue
            dst = dst_root / trap.name / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_downscaled(src, dst, side, keep_mtime=True)
        traps.append(dst_root / trap.name)
    return traps


def dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = {
        QPalette.Window: "#2b2b2b", QPalette.WindowText: "#e6e6e6", QPalette.Base: "#1f1f1f",
        QPalette.AlternateBase: "#282828", QPalette.Text: "#e6e6e6", QPalette.Button: "#353535",
        QPalette.ButtonText: "#e6e6e6", QPalette.Highlight: "#3d6fb6",
        QPalette.HighlightedText: "#ffffff", QPalette.ToolTipBase: "#353535",
        QPalette.ToolTipText: "#e6e6e6", QPalette.PlaceholderText: "#9a9a9a",
        QPalette.Link: "#7fb0ff", QPalette.Mid: "#444444", QPalette.Dark: "#191919",
        QPalette.Light: "#505050", QPalette.Midlight: "#3a3a3a",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor("#7a7a7a"))
    return p


class Shooter:
    def __init__(self, app, out: Path, suffix: str):
        self.app, self.out, self.suffix = app, out, suffix
        self.saved: list[Path] = []

    def wait(self, seconds: float, until=None, timeout: float = 600.0) -> None:
        """Let the event loop run ``seconds`` (or until ``until()`` is true)."""
        end = time.monotonic() + (timeout if until else seconds)
        while time.monotonic() < end:
            self.app.processEvents()
            if until is not None and until():
                return
            time.sleep(0.02)
        if until is not None:
            raise TimeoutError("the app did not reach the expected state in time")

    def save(self, widget, name: str) -> None:
        self.wait(0.3)
        path = self.out / f"{name}{self.suffix}.png"
        widget.grab().save(str(path))
        self.saved.append(path)
        print(f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--dark", action="store_true")
    ap.add_argument("--images", type=Path, default=SHARED)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    from trapgui.gui.main_window import MainWindow
    from trapgui.gui.theme import apply_theme
    from trapgui.services.app_services import Services
    from trapgui.services.processing_types import RunScope

    tmp = Path(tempfile.mkdtemp(prefix="trapgui-shots-"))
    try:
        t0 = time.perf_counter()
        traps = copy_downscaled(args.images, tmp / "traps", args.side)
        print(f"copied {sum(1 for _ in (tmp / 'traps').rglob('*.*'))} images "
              f"({time.perf_counter() - t0:.1f} s)")
        services = Services.create(config_dir=tmp / "config", data_dir=tmp / "data")
        s = services.settings
        s.detector, s.binary_classifier, s.species_classifier, s.order_classifier = (
            "builtin", None, None, None)
        s.device = "cpu"
        s.detection_threshold = 0.5

        app = QApplication.instance() or QApplication(sys.argv[:1])
        app.setApplicationName("trapgui")
        apply_theme(app)
        if args.dark:
            app.setStyle("Fusion")
            app.setPalette(dark_palette())
        shots = Shooter(app, args.out, "-dark" if args.dark else "")
        window = MainWindow(services)
        window.resize(1440, 900)
        window.show()
        window.start()
        for name in ("modelOfferDismissed",):
            window._ui.setValue(name, True)
        window.offer.hide()

        reports = []
        window.scanner.scanFinished.connect(reports.append)
        done = {"scans": False, "summary": None, "committed": 0}
        window.scanner.allDone.connect(lambda: done.update(scans=True))
        window.controller.finished.connect(lambda summary: done.update(summary=summary or "none"))
        window.controller.committed.connect(
            lambda ids, _n: done.update(committed=done["committed"] + len(ids)))
        window.open_folders([str(t) for t in traps])
        shots.wait(0, until=lambda: done["scans"], timeout=300)
        print(f"scanned {len(reports)} traps")

        window.controller.start(RunScope(
            deployment_ids=tuple(r.deployment_id for r in reports), include_undated=True,
            description="all traps"))
        shots.wait(0, until=lambda: done["committed"] >= 3 or done["summary"], timeout=600)
        from trapgui.services.results_types import DetectionQuery

        busiest = max(reports, key=lambda r: services.results.count_detections(
            DetectionQuery(deployment_id=r.deployment_id, min_score=0.5)))
        window.tree.select_deployment(busiest.deployment_id)
        window.tabs.setCurrentWidget(window.detections)
        shots.wait(2.5)  # the views refresh at most once a second
        shots.save(window, "processing")
        shots.wait(0, until=lambda: done["summary"] is not None, timeout=1800)
        summary = done["summary"]
        print(f"run: {getattr(summary, 'status', summary)}; "
              f"{getattr(summary, 'detections', '?')} detections")
        window._refresh_views()
        shots.wait(2)

        # the densest trap: its nights in the overview and its detections everywhere
        panama = next((r.deployment_id for r in reports if Path(r.folder).name == "panama"),
                      reports[0].deployment_id)
        window.tree.select_deployment(panama)
        shots.wait(2.5)
        window.tabs.setCurrentWidget(window.overview)
        shots.save(window, "main-window")
        window.panel_dock.hide()  # the results views get the room once the run is over

        window.tabs.setCurrentWidget(window.detections)
        shots.wait(0, until=lambda: window.detections.model.rowCount() > 0, timeout=60)
        window.detections.table.selectRow(2)
        shots.save(window, "detections")

        viewer = window.viewer
        best = _image_with_most_boxes(services, panama)
        if best is not None:
            window._open_image(best[0], best[1])
            shots.wait(0, until=lambda: viewer.current_image_id() == best[0]
                       and viewer.is_full_resolution(), timeout=60)
            viewer.canvas.fit()
            shots.save(window, "image-viewer")
            viewer.select_detection(best[1])
            shots.save(viewer, "image-viewer-detection")
            # a person's correction: a box drawn around a missed insect (B, then a drag)
            from PySide6.QtCore import QRectF

            viewer.scene.clearSelection()
            viewer.set_drawing(True)
            r, read = viewer.scene.sceneRect(), []
            viewer.boxesReloaded.connect(lambda _image: read.append(True))
            viewer.canvas.boxDrawn.emit(QRectF(r.width() * 0.46, r.height() * 0.42,
                                               r.width() * 0.05, r.height() * 0.07))
            shots.wait(0, until=lambda: read and not viewer.edits.busy(), timeout=60)
            shots.save(viewer, "image-viewer-human-box")
            viewer.set_drawing(False)

        window.tabs.setCurrentWidget(window.species)
        shots.wait(3)
        shots.save(window, "species-summary")

        # the 5 frames taken minutes apart: insects resting on the sheet, tracked
        sequential = next((r.deployment_id for r in reports
                           if Path(r.folder).name == "sequential"), panama)
        window.tree.select_deployment(sequential)
        shots.wait(2.5)
        occurrences = window.occurrences
        window.tabs.setCurrentWidget(occurrences)
        shots.wait(0, until=lambda: occurrences.model.rowCount() > 0, timeout=60)
        longest = max(range(occurrences.model.rowCount()),
                      key=lambda r: (not occurrences.model.rows[r].fixture,
                                     occurrences.model.rows[r].n_detections))
        occurrences.table.selectRow(longest)
        shots.wait(0, until=lambda: occurrences.frames.count() > 0 and all(
            f.image is not None for f in occurrences.frames.frames()), timeout=60)
        occurrences.step_frame(1)
        shots.wait(0, until=lambda: occurrences.viewer.is_full_resolution(), timeout=60)
        occurrences.viewer.canvas.fit()
        shots.wait(1)
        shots.save(window, "occurrences")

        from trapgui.gui.export_dialog import ExportDialog

        _dep, nights = window.tree.selection()
        dialog = ExportDialog(services, nights, (s.detection_threshold,
                                                 s.classification_threshold), window,
                              initial="occurrences")
        dialog.path_edit.setText(str(tmp / "individuals.csv"))
        dialog.show()
        shots.wait(1)
        finished = []
        dialog.finished_export.connect(finished.append)
        dialog.start_export()
        shots.wait(0, until=lambda: bool(finished) or not dialog.is_running(), timeout=60)
        shown = "~/Documents/individuals-sequential.csv"  # not the temp path
        result = dialog.result_label.text().replace(str(tmp / "individuals.csv"), shown)
        dialog.path_edit.blockSignals(True)  # shown, not checked again
        dialog.path_edit.setText(shown)
        dialog.path_edit.blockSignals(False)
        dialog.result_label.setText(result)
        shots.save(dialog, "export")
        dialog.chooser.set_format("camtrap-dp")
        checked = []
        dialog.checked.connect(lambda: checked.append(True))
        dialog.path_edit.setText(str(tmp / "camtrap-dp-sequential"))
        shots.wait(0, until=lambda: bool(checked), timeout=60)  # checked in the background
        dialog.path_edit.blockSignals(True)  # shown, not checked again: not the temp path
        dialog.path_edit.setText("~/Documents/camtrap-dp-sequential")
        dialog.path_edit.blockSignals(False)
        dialog.result_label.setText("")
        dialog.open_folder_button.setEnabled(False)
        dialog.progress.hide()
        shots.save(dialog, "export-camtrap")
        dialog.close()

        from trapgui.gui.model_manager import ModelManager
        from trapgui.gui.settings_dialog import SettingsDialog

        settings = SettingsDialog(services, window)
        settings.show()
        shots.save(settings, "settings")
        settings.close()
        manager = ModelManager(services, window)
        manager.resize(900, 520)
        manager.show()
        shots.wait(2)
        shots.save(manager, "model-manager")
        manager.close()

        window.controller.wait(30)
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(10_000)
        window._close_when_idle = True
        window.close()
        services.close()
        print(f"{len(shots.saved)} screenshots in {args.out}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _image_with_most_boxes(services, deployment_id: int):
    """(image id, its best detection id) of the trap's image with the most detections."""
    from trapgui.services.results_types import DetectionQuery

    rows = services.results.fetch_detections(
        DetectionQuery(deployment_id=deployment_id, min_score=0.5), None, 100_000)
    if not rows:
        return None
    counts: dict[int, int] = {}
    for r in rows:
        counts[r.image_id] = counts.get(r.image_id, 0) + 1
    image_id = max(counts, key=counts.get)
    # a confident, moth-sized box: large enough to see, small enough that zooming to it shows
    details = services.results.image_details(image_id)
    boxes = [b for b in details.boxes if b.score >= 0.9 and b.box.width >= 40] or details.boxes
    boxes.sort(key=lambda b: b.box.area)
    return image_id, boxes[len(boxes) // 3].detection_id


if __name__ == "__main__":
    raise SystemExit(main())
