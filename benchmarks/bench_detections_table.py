"""Detections table benchmark: a catalogue of 1,000,000 detections opened in the real table
model (Qt offscreen), then scrolled.

    .venv/bin/python benchmarks/bench_detections_table.py [--rows 1000000] [--db PATH]

Prints
1. time from ``set_query`` to the first rows on screen, and to the total count (both run off
   the GUI thread; the goal is "opens in under a second");
2. the longest GUI-thread stall while the model pages through 100 pages (a 5 ms QTimer
   heartbeat records the largest gap between beats: smooth scrolling means no long gap),
   next to the same figure for one idle second (the machine's own noise);
3. the time of one page per sort column, first page vs. the page after 100 pages: keyset
   pagination keeps them equal; the same deep page with OFFSET is printed for comparison;
4. the same for one selected night (what a user usually looks at).
The catalogue is built once (bulk inserts, ~30 s for 1M rows) and kept at --db for re-runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QElapsedTimer, QModelIndex, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from tests.gui.results_fixtures import populate  # noqa: E402
from trapgui.db import open_database  # noqa: E402
from trapgui.gui.detections_table_model import PAGE_SIZE, DetectionsTableModel  # noqa: E402
from trapgui.services.app_services import Services  # noqa: E402
from trapgui.services.results_types import SORT_KEYS, DetectionQuery  # noqa: E402


def _build(path: Path, rows: int) -> None:
    if path.exists():
        return
    print(f"building {rows:,} detections in {path} …", flush=True)
    t = time.perf_counter()
    db = open_database(path)
    populate(db, path.parent / "trap", n_detections=rows, n_nights=30, images_per_night=300)
    db.close()
    print(f"  built in {time.perf_counter() - t:.1f} s")


class Heartbeat:
    """Records the longest gap between 5 ms timer beats on the GUI thread."""

    def __init__(self):
        self.timer = QTimer(interval=5)
        self.clock = QElapsedTimer()
        self.longest = 0
        self.timer.timeout.connect(self._beat)

    def start(self):
        self.longest = 0
        self.clock.start()
        self.timer.start()

    def _beat(self):
        self.longest = max(self.longest, self.clock.restart())

    def stop(self) -> int:
        self.timer.stop()
        return self.longest


def _wait(app, cond, timeout=60.0, quiet=False):
    end = time.perf_counter() + timeout
    while not cond():
        app.processEvents()
        time.sleep(0.0005)
        if time.perf_counter() > end:
            if quiet:
                return
            raise TimeoutError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path,
                    default=Path(tempfile.gettempdir()) / "trapgui-bench-table" / "c.sqlite3")
    ap.add_argument("--pages", type=int, default=100)
    args = ap.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    _build(args.db, args.rows)

    app = QApplication.instance() or QApplication([])
    services = Services.create(config_dir=args.db.parent / "config", db_path=args.db)
    services.results.count_detections(DetectionQuery())  # open the file, as the app has by now
    model = DetectionsTableModel(services)
    beat = Heartbeat()

    # the machine's own noise: the longest gap between beats with nothing to do
    beat.start()
    _wait(app, lambda: False, timeout=1.0, quiet=True)
    print(f"idle: longest GUI stall {beat.stop()} ms (baseline for the figures below)")

    t = time.perf_counter()
    beat.start()
    model.set_query(DetectionQuery(min_score=0.5))
    _wait(app, lambda: model.rowCount() > 0)
    first = time.perf_counter() - t
    _wait(app, lambda: model.total >= 0)
    counted = time.perf_counter() - t
    stall_open = beat.stop()
    print(f"open: first {model.rowCount()} rows after {first * 1000:.0f} ms, "
          f"count {model.total:,} after {counted * 1000:.0f} ms, "
          f"longest GUI stall {stall_open} ms")

    beat.start()
    t = time.perf_counter()
    for _ in range(args.pages):
        model.fetchMore(QModelIndex())
        _wait(app, lambda: not model.is_loading())
    scroll = time.perf_counter() - t
    stall_scroll = beat.stop()
    print(f"scroll: {args.pages} pages of {PAGE_SIZE} ({model.rowCount():,} rows loaded) in "
          f"{scroll:.2f} s = {scroll / args.pages * 1000:.1f} ms/page; "
          f"longest GUI stall {stall_scroll} ms")

    results = services.results
    print(f"\none page of {PAGE_SIZE} rows, score >= 0.5 (ms): "
          "sort, first page, page after 100 pages (keyset), same page with OFFSET")
    for key in SORT_KEYS:
        q = DetectionQuery(min_score=0.5, sort=key, descending=True)
        rows = results.fetch_detections(q, None, PAGE_SIZE * 100)
        t0 = time.perf_counter()
        results.fetch_detections(q, None, PAGE_SIZE)
        t_first = time.perf_counter() - t0
        last = rows[-1]
        t0 = time.perf_counter()
        results.fetch_detections(q, last, PAGE_SIZE)
        t_deep = time.perf_counter() - t0
        t0 = time.perf_counter()
        _offset_page(services, q, PAGE_SIZE * 100)
        t_offset = time.perf_counter() - t0
        print(f"  {key:12s} {t_first * 1000:7.0f} {t_deep * 1000:7.0f} {t_offset * 1000:7.0f}")

    night = services.results.nights(list(range(1, 4)))[:1]
    if night:
        print("\none night selected (ms), first page / page after 10 pages:")
        for key in SORT_KEYS:
            q = DetectionQuery(night_ids=(night[0].id,), min_score=0.5, sort=key)
            t0 = time.perf_counter()
            rows = results.fetch_detections(q, None, PAGE_SIZE)
            t_first = time.perf_counter() - t0
            rows = results.fetch_detections(q, None, PAGE_SIZE * 10)
            t0 = time.perf_counter()
            results.fetch_detections(q, rows[-1], PAGE_SIZE)
            t_deep = time.perf_counter() - t0
            print(f"  {key:12s} {t_first * 1000:7.0f} {t_deep * 1000:7.0f}")
    services.close()
    model = beat = None  # the Qt objects go before the application does
    sys.stdout.flush()


def _offset_page(services, q: DetectionQuery, offset: int) -> None:
    """The same deep page the naive way (LIMIT/OFFSET), for the comparison column."""
    from sqlalchemy import text

    col = {"id": "d.id", "night": "n.date", "time": "i.captured_at", "image": "i.rel_path",
           "score": "d.score", "binary": "d.binary_score", "label": "d.top_label",
           "rank": "d.top_rank", "label_score": "d.top_score"}[q.sort]
    order = f"{col} DESC, d.id DESC" if col != "d.id" else "d.id DESC"
    with services.results.db.session() as s:
        s.execute(text(
            "SELECT d.id, d.score, d.top_label FROM detections d JOIN images i ON i.id = "
            "d.image_id LEFT JOIN nights n ON n.id = i.night_id WHERE d.score >= :m "
            f"ORDER BY {order} LIMIT :l OFFSET :o"), {"m": q.min_score, "l": PAGE_SIZE,
                                                      "o": offset}).all()


if __name__ == "__main__":
    main()
