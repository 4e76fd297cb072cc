"""Review mode: how long a big night takes to open, and the GUI thread's longest stall while a
person reviews 1,000 occurrences from the keyboard.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_review.py \
        [--occurrences 5000] [--actions 1000] [--opens 3] [--window] [--profile FILE]

Goals (issue 14): a night with 5,000 occurrences opens in <= 1 s; each review action <= 50 ms
on the GUI thread. A temporary catalogue holds one synthetic night (one detection per
occurrence, crops cut from a real shared photograph when ../shared is there). The actions go
through the review view as key presses (QTest) on its grid, the real handlers: Enter
(confirm), Delete (reject), a type-ahead relabel every tenth (the picker opened by typing,
the name typed one key event at a time, as a person types, Enter), Ctrl+Z (undo); each is saved through the services before the next.
``--window`` reviews in the main window, whose other views and trap tree follow the actions.
The app's runtime settings apply (``gui.launch.prepare_application``: GIL switch interval,
garbage collection on the GUI thread). Figures: a 10 ms QTimer heartbeat's longest gap over 10 ms (GUI-thread stall) during the
actions and, for comparison, with the view idle; the time spent in each key press and in
each saved action's GUI-thread update.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SEQUENTIAL = REPO.parent / "shared" / "trap-images" / "sequential"
IDLE_S = 3.0


def pct(values, q):
    values = sorted(values)
    return values[int(q * (len(values) - 1))] if values else float("nan")


class Heartbeat:
    def __init__(self, interval_ms=10):
        from PySide6.QtCore import QTimer

        self.interval = interval_ms
        self.gaps: list[float] = []
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._beat)

    def mark(self, what: str) -> None:
        """Something that ran on the GUI thread before the next beat (see ``busiest``)."""
        self._marks[what] = self._marks.get(what, 0) + 1

    def busiest(self, n=5) -> list[tuple[float, float, dict]]:
        """(own CPU ms, gap ms, what ran) of the ``n`` beats with the most GUI-thread CPU."""
        return sorted(zip(self.cpu, self.gaps, self.marks), key=lambda b: -b[0])[:n]

    def start(self):
        self.marks, self._marks = [], {}
        self.gaps, self.cpu, self.last = [], [], time.perf_counter()
        self.last_cpu = time.thread_time()
        self.timer.start()

    def stop(self):
        self.timer.stop()
        return [g - self.interval for g in self.gaps]

    def busy_stalls(self, over_ms=50.0) -> list[float]:
        """Gaps in which the GUI thread itself ran (its CPU time) more than ``over_ms``: work
        on the GUI thread, as opposed to waiting for a core or for the GIL."""
        return [c for c in self.cpu if c > over_ms]

    def _beat(self):
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append((now - self.last) * 1000)
        self.cpu.append((cpu - self.last_cpu) * 1000)
        self.marks.append(self._marks)
        self._marks = {}
        self.last, self.last_cpu = now, cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--occurrences", type=int, default=5000)
    ap.add_argument("--actions", type=int, default=1000)
    ap.add_argument("--opens", type=int, default=3)
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a cProfile of the GUI thread during the actions here (pstats)")
    ap.add_argument("--window", action="store_true",
                    help="review in the main window (its other views and tree follow the actions)")
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="the GIL switch interval instead of the app's (gui.launch)")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from trapgui.gui.launch import prepare_application

    app = QApplication.instance() or QApplication(["trapgui"])
    prepare_application(app)  # what `trapgui` does at start: GIL switch interval, collector
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} "
          f"cores; switch interval {sys.getswitchinterval() * 1000:.1f} ms")
    tmp = Path(tempfile.mkdtemp(prefix="trapgui-bench-review-"))
    atexit.register(shutil.rmtree, tmp, True)
    os.environ["TRAPGUI_CONFIG_DIR"] = str(tmp / "config")
    os.environ["TRAPGUI_DATA_DIR"] = str(tmp / "data")

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest
    from sqlalchemy import update

    from tests.gui.review_fixtures import build_synthetic
    from trapgui.db.tables import Deployment, Image
    from trapgui.gui.collector import freeze_long_lived_objects
    from trapgui.gui.job_runner import job_runner
    from trapgui.gui.review_view import ReviewView
    from trapgui.services.app_services import Services

    services = Services.create()
    services.settings.reviewer_name = "Bench Reviewer"
    t0 = time.perf_counter()
    pipeline, night = build_synthetic(services.db, args.occurrences)
    photo = sorted(SEQUENTIAL.glob("*.jpg"))[:1]
    if photo:  # crops cut from a real 4096 x 2160 photograph
        with services.db.write_session() as s:
            s.execute(update(Deployment).values(path=str(SEQUENTIAL)))
            s.execute(update(Image).values(rel_path=photo[0].name))
    print(f"catalogue: {args.occurrences} occurrences in one night, built in "
          f"{time.perf_counter() - t0:.1f} s; crops from "
          f"{photo[0].name if photo else 'a missing file (no photograph)'}")
    services.review.night_rows(pipeline, night)  # SQLite's page cache warm, as after a look

    window = None
    if args.window:
        from sqlalchemy import select

        from trapgui.db.tables import Night
        from trapgui.gui.main_window import MainWindow

        window = MainWindow(services)
        window.resize(1280, 860)
        window.show()
        view = window.review
        window.tabs.setCurrentWidget(view)
        with services.db.session() as s:
            deployment = s.execute(select(Night.deployment_id).where(Night.id == night)).scalar()
        window._selection_changed(deployment, [night])  # as the tree says it: every view
    else:
        view = ReviewView(services)
        view.resize(1280, 860)
        view.show()
    app.processEvents()

    def run_until(start, done_signal, timeout_s=120):
        loop = QEventLoop()
        done_signal.connect(loop.quit)
        QTimer.singleShot(0, start)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        done_signal.disconnect(loop.quit)

    # ---- open: selection -> rows listed -> first paint ------------------------------------
    opens, paints = [], []
    for k in range(args.opens):
        view._night = None
        started = time.perf_counter()
        run_until(lambda: view.set_selection(None, [night]), view.loaded)
        listed = time.perf_counter()
        view.grid.viewport().repaint()
        painted = time.perf_counter()
        opens.append(painted - started)
        paints.append((painted - listed) * 1000)
        assert view.model.rowCount() == args.occurrences, view.model.rowCount()
    print(f"open a night of {args.occurrences:,} occurrences (selection to painted grid): "
          f"median {statistics.median(opens):.3f} s, max {max(opens):.3f} s over {args.opens} "
          f"(goal <= 1 s); first paint {statistics.median(paints):.1f} ms")

    # as the app does once it has started (gui.launch): the long-lived objects out of the
    # collector's full scans, or a full collection walks them all on the GUI thread
    freeze_long_lived_objects()

    # ---- idle baseline -------------------------------------------------------------------
    beat = Heartbeat()
    beat.start()
    loop = QEventLoop()
    QTimer.singleShot(int(IDLE_S * 1000), loop.quit)
    loop.exec()
    idle = beat.stop()

    # ---- 1,000 actions from the keyboard -------------------------------------------------
    view.grid.setFocus()
    view.grid.setCurrentIndex(view.model.index(0))
    press_ms, applied_ms, kinds = [], [], []
    original = view._applied

    def timed_applied(gen, result, focus):
        t = time.perf_counter()
        original(gen, result, focus)
        applied_ms.append((time.perf_counter() - t) * 1000)

    view._applied = timed_applied
    saving_ms: dict[str, list[tuple[float, float]]] = {}  # method -> (wall, own CPU) ms

    def timed(name, fn):  # on the saving (runner) thread
        def wrapper(*a, **k):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                saving_ms.setdefault(name, []).append(((time.perf_counter() - t) * 1000,
                                                       (time.thread_time() - c) * 1000))
        return wrapper

    review = services.review
    for name in ("confirm", "reject", "relabel", "undo", "rows", "taxon_choices"):
        setattr(review, name, timed(name, getattr(review, name)))
    state = {"n": 0, "started": 0.0}
    finished = QEventLoop()

    def press(key, modifier=Qt.KeyboardModifier.NoModifier):
        t = time.perf_counter()
        QTest.keyClick(view.grid, key, modifier)
        press_ms.append((time.perf_counter() - t) * 1000)

    relabel_total_ms: list[float] = []

    def type_keys(keys, took):
        widget, key = keys[0]
        t = time.perf_counter()
        QTest.keyClick(widget(), key)
        took.append((time.perf_counter() - t) * 1000)
        if len(keys) > 1:
            QTimer.singleShot(0, lambda: type_keys(keys[1:], took))
        else:  # the slowest key event is what the person waits for
            press_ms.append(max(took))
            relabel_total_ms.append(sum(took))

    def next_action(_outcome=None):
        n = state["n"]
        if n >= args.actions:
            finished.quit()
            return
        state["n"] += 1
        beat.mark("action " + ("relabel" if n % 10 == 9 else "undo" if n % 7 == 6 else
                               "reject" if n % 5 == 4 else "confirm"))
        if n % 10 == 9:
            # as a person types: one key event per pass of the event loop (what is painted and
            # answered in between runs between the keys), "N" on the grid opening the picker
            kinds.append("relabel")
            keys = [(lambda: view.grid, Qt.Key.Key_N)]
            keys += [(lambda: view.picker.edit, c) for c in "octuidae sp. B"]
            keys.append((lambda: view.picker.edit, Qt.Key.Key_Return))
            type_keys(keys, [])
        elif n % 7 == 6:
            kinds.append("undo")
            press(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        elif n % 5 == 4:
            kinds.append("reject")
            press(Qt.Key.Key_Delete)
        else:
            kinds.append("confirm")
            press(Qt.Key.Key_Return)

    view.actionApplied.connect(lambda o: QTimer.singleShot(0, next_action))
    gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
    gc_started = {}

    def gc_timer(phase, info):  # collections run on the GUI thread (GuiThreadCollector)
        if phase == "start":
            gc_started[info["generation"]] = time.perf_counter()
        elif info["generation"] in gc_started:
            gen = info["generation"]
            gc_ms[gen].append((time.perf_counter() - gc_started.pop(gen)) * 1000)

    gc.callbacks.append(gc_timer)
    set_crop = view.model.set_crop
    view.model.set_crop = lambda det, pixmap: (beat.mark("crop shown"), set_crop(det, pixmap))
    delegate = view.grid.itemDelegate()
    if hasattr(delegate, "_draw_contents"):  # tiles drawn anew (the rest come from its cache)
        draw = delegate._draw_contents
        delegate._draw_contents = lambda *a: (beat.mark("tile drawn"), draw(*a))
    original_applied = view._applied

    def marked_applied(*a):
        beat.mark("answer applied")
        original_applied(*a)

    view._applied = marked_applied
    profile = cProfile.Profile() if args.profile else None  # this (the GUI) thread only
    if profile is not None:
        profile.enable()
    beat.start()
    state["started"] = time.perf_counter()
    QTimer.singleShot(0, next_action)
    QTimer.singleShot(600_000, finished.quit)
    finished.exec()
    elapsed = time.perf_counter() - state["started"]
    stalls = beat.stop()
    if profile is not None:
        profile.disable()
        profile.dump_stats(str(args.profile))
    gc.callbacks.remove(gc_timer)
    job_runner().wait(30)
    done = state["n"]
    print(f"{done} review actions ({', '.join(f'{kinds.count(k)} {k}' for k in ('confirm', 'reject', 'relabel', 'undo'))}) "
          f"in {elapsed:.1f} s ({done / elapsed:.0f} actions/s, each saved before the next)")
    print(f"GUI-thread stall (10 ms heartbeat) during the actions: longest {max(stalls):.1f} ms "
          f"(goal <= 50 ms), p99 {pct(stalls, 0.99):.1f} ms, {sum(s > 50 for s in stalls)} over "
          f"50 ms in {len(stalls)} beats")
    busy = beat.busy_stalls()
    print(f"  of which the GUI thread's own CPU time: longest {max(beat.cpu):.1f} ms, p99 "
          f"{pct(beat.cpu, 0.99):.1f} ms, {len(busy)} gaps with over 50 ms of it (the rest of "
          "a stall is waiting for a core or the GIL)")
    print("  busiest beats (GUI-thread CPU / gap, what ran in them): " + "; ".join(
        f"{c:.1f} / {g:.1f} ms: {', '.join(f'{v} {k}' for k, v in m.items()) or 'nothing marked'}"
        for c, g, m in beat.busiest()))
    print(f"same heartbeat, view idle {IDLE_S:.0f} s (machine noise): longest {max(idle):.1f} ms, "
          f"p99 {pct(idle, 0.99):.1f} ms")
    print(f"per key press (handler, GUI thread): max {max(press_ms):.1f} ms, p99 "
          f"{pct(press_ms, 0.99):.1f} ms, median {statistics.median(press_ms):.2f} ms")
    by_kind = {}
    for kind, ms in zip(kinds, press_ms):
        by_kind.setdefault(kind, []).append(ms)
    print("  by action: " + ", ".join(f"{k} max {max(v):.1f} / median {statistics.median(v):.2f} ms"
                                      for k, v in by_kind.items()))
    print("garbage collections on the GUI thread during the actions: " + ", ".join(
        f"generation {g}: {len(v)}, longest {max(v, default=0):.1f} ms" for g, v in gc_ms.items()))
    print("saving thread per call (wall / own CPU, median and max): " + ", ".join(
        f"{k} {statistics.median(w for w, _ in v):.1f} / {statistics.median(c for _, c in v):.1f}"
        f" ms, max {max(w for w, _ in v):.1f} / {max(c for _, c in v):.1f} ms"
        for k, v in saving_ms.items()))
    first, last = (sum(w for w, _ in v) for v in (saving_ms["confirm"][:100],
                                                   saving_ms["confirm"][-100:]))
    print(f"  confirm, first 100 vs last 100: {first / 100:.1f} vs {last / 100:.1f} ms each")
    print(f"per saved action's grid update (GUI thread): max {max(applied_ms):.1f} ms, p99 "
          f"{pct(applied_ms, 0.99):.1f} ms, median {statistics.median(applied_ms):.2f} ms")
    reviewed = sum(1 for r in services.review.night_rows(pipeline, night) if r.reviewed)
    print(f"catalogue after the run: {reviewed} occurrences reviewed, "
          f"{len(services.review.history(night, limit=10_000))} actions logged")
    (window or view).close()
    job_runner().wait(30)
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
