"""Screenshots of review mode, rendered offscreen from the real widgets over a real night.

    .venv/bin/python scripts/review_screenshots.py [--out docs/screenshots]

The night is the shared sequential photographs with their hand-labelled boxes, tracked by the
real tracking job (``tests/gui/review_fixtures.py``); a few decisions are made through the
view's own actions, then:

    review.png             the grid mid-review (confirmed, relabelled, rejected, fixture)
    review-relabel.png     the type-ahead relabel picker
    review-agreement.png   the agreement dialog
    review-split.png       an occurrence's frames (split, move one, delete or draw a box)
    review-move.png        moving one detection to another occurrence of the night
    review-box.png         a box dragged around an insect the detector missed
    review-appearance.png  the grid sorted by appearance (embeddings written for the shot:
                           the shared night has none; look-alikes given similar vectors)

A temporary database and settings folder are used; the user's own are never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def wait(app, condition, timeout=60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="trapgui-review-shots-"))
    os.environ["TRAPGUI_CONFIG_DIR"] = str(tmp / "config")
    os.environ["TRAPGUI_DATA_DIR"] = str(tmp / "data")

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from tests.gui.review_fixtures import build_sequential
    from trapgui.gui.job_runner import job_runner
    from trapgui.gui.review_agreement_dialog import ReviewAgreementDialog
    from trapgui.gui.review_view import ReviewView
    from trapgui.services.app_services import Services

    app = QApplication.instance() or QApplication(["trapgui"])
    services = Services.create()
    services.settings.reviewer_name = "Kim Reviewer"
    pipeline, night = build_sequential(services.db)
    view = ReviewView(services)
    view.resize(1180, 780)
    view.show()
    done = []
    view.loaded.connect(done.append)
    view.set_selection(None, [night])
    wait(app, lambda: done)
    applied = []
    view.actionApplied.connect(applied.append)
    grid = view.grid
    steps = [view.confirm, view.confirm, view.reject, view.mark_fixture,
             lambda: view.relabel("Noctuidae sp. A"), view.confirm]
    for k, step in enumerate(steps):
        step()
        wait(app, lambda k=k: len(applied) > k)
    grid.setCurrentIndex(view.model.index(len(steps)))
    grid.setFocus()
    # every crop on screen decoded
    wait(app, lambda: all(view.model.has_crop(r.best_detection_id)
                          for r in view.model.rows[:24]), timeout=120)
    app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    view.grab().save(str(args.out / "review.png"))

    view.open_picker("n")
    view.picker.edit.setText("Noctu")
    view.picker.completer.setCompletionPrefix("Noctu")
    view.picker.completer.complete()
    app.processEvents()
    shot = view.grab()
    from PySide6.QtGui import QPainter

    painter = QPainter(shot)
    pos = view.picker.mapTo(view, view.picker.rect().topLeft()) if view.picker.parent() is view \
        else view.mapFromGlobal(view.picker.pos())
    painter.drawPixmap(pos, view.picker.grab())
    popup = view.picker.completer.popup()
    if popup.isVisible():
        painter.drawPixmap(view.mapFromGlobal(popup.mapToGlobal(popup.rect().topLeft())),
                           popup.grab())
    painter.end()
    shot.save(str(args.out / "review-relabel.png"))
    view.picker.reject()

    dialog = ReviewAgreementDialog(services, pipeline, night, view)
    dialog.show()
    wait(app, lambda: "reviewed" in dialog.summary.text())
    app.processEvents()
    dialog.grab().save(str(args.out / "review-agreement.png"))
    dialog.close()

    multi = next(k for k, r in enumerate(view.model.rows) if r.n_detections >= 5)
    grid.setCurrentIndex(view.model.index(multi))
    view.open_split()
    splitter = view.splitter
    wait(app, lambda: splitter.model.rowCount() >= 5
         and len(splitter.model.crops) == splitter.model.rowCount(), timeout=120)
    app.processEvents()
    splitter.grab().save(str(args.out / "review-split.png"))
    frame = splitter.model.frames[splitter.list.currentIndex().row()]
    occ = view.model.rows[multi].id
    splitter.reject()

    view.open_move(frame.detection_id, occ)
    view.mover.filter.setText("Noctua")
    app.processEvents()
    view.mover.grab().save(str(args.out / "review-move.png"))
    view.mover.reject()

    view.open_box(frame.image_id, frame.image_path, occ)
    boxer = view.boxer
    wait(app, lambda: boxer.view.ready)
    app.processEvents()
    from PySide6.QtCore import QPointF, QRectF

    r = boxer.scene.sceneRect()
    boxer.view.rect_item.setRect(QRectF(QPointF(r.width() * 0.182, r.height() * 0.385),
                                        QPointF(r.width() * 0.215, r.height() * 0.43)))
    boxer.view.rect_item.setVisible(True)
    boxer._drawn(None)
    app.processEvents()
    boxer.grab().save(str(args.out / "review-box.png"))
    boxer.reject()

    _appearance_shot(app, services, view, night, args.out)
    job_runner().wait(30)
    services.close()
    print(f"saved review.png, review-relabel.png, review-agreement.png, review-split.png, "
          f"review-move.png, review-box.png, review-appearance.png in {args.out}")
    _ = Qt
    return 0


def _appearance_shot(app, services, view, night, out) -> None:
    """Embeddings for the shot: each machine label a direction, so look-alikes (by label)
    group; then the grid sorted by appearance."""
    import numpy as np
    from sqlalchemy import select, update

    from trapgui.db.tables import Detection, Occurrence
    from trapgui.tracking import encode_embedding

    rng = np.random.default_rng(5)
    centres: dict = {}
    with services.db.write_session() as s:
        for det, label in s.execute(select(Detection.id, Occurrence.label)
                                    .join(Occurrence, Occurrence.id == Detection.occurrence_id)
                                    .where(Occurrence.night_id == night)).all():
            c = centres.setdefault(label, rng.normal(size=64))
            s.execute(update(Detection).where(Detection.id == det).values(
                embedding=encode_embedding(c + 0.3 * rng.normal(size=64))))
    got = []
    view.appearanceOrdered.connect(got.append)
    view.sort.setCurrentIndex(view.sort.findData("appearance"))
    wait(app, lambda: got)
    view.grid.setCurrentIndex(view.model.index(0))
    wait(app, lambda: all(view.model.has_crop(r.best_detection_id)
                          for r in view.model.rows[:24]), timeout=120)
    app.processEvents()
    view.grab().save(str(out / "review-appearance.png"))


if __name__ == "__main__":
    sys.exit(main())
