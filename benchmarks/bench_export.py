"""Export benchmark: stream N detections (with a classification each) to CSV.

    .venv/bin/python benchmarks/bench_export.py [--rows 1000000]

Prints rows/s and the process's peak resident memory before and after the export: a streamed
export adds about the same few MB whatever N is (compare --rows 100000 with --rows 1000000).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import select  # noqa: E402

from bench_insert import fresh, row  # noqa: E402
from trapgui.db.tables import Classification, Detection  # noqa: E402
from trapgui.export.csv_export import export_detections  # noqa: E402

PER_IMAGE = 10
CHUNK = 5_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    n = ap.parse_args().rows
    n_images = max(1, n // PER_IMAGE)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="trapgui-bench-") as tmp:
        db, pid, ids = fresh(Path(tmp), "export", n_images)
        t = time.perf_counter()
        for start in range(0, n, CHUNK):  # filled in chunks so the set-up itself stays small
            with db.write_session() as s:
                first = (s.execute(select(Detection.id).order_by(Detection.id.desc())
                                   .limit(1)).scalar() or 0) + 1
                part = range(start, min(n, start + CHUNK))
                s.execute(Detection.__table__.insert(), [
                    dict(row(ids[i % n_images], pid, i // n_images), id=first + k)
                    for k, i in enumerate(part)])
                s.execute(Classification.__table__.insert(), [
                    {"detection_id": first + k, "model": "bin", "rank": "binary",
                     "label": "moth", "score": 0.9, "top_labels": ["moth"], "top_scores": [0.9]}
                    for k in range(len(part))])
        print(f"set-up: {n} detections + {n} classifications in {time.perf_counter() - t:.1f} s")
        before = peak_rss_mb()
        t = time.perf_counter()
        report = export_detections(db, Path(tmp) / "detections.csv")
        took = time.perf_counter() - t
        size = (Path(tmp) / "detections.csv").stat().st_size / 1e6
        print(f"export: {report.rows} rows in {took:.1f} s ({report.rows / took:.0f} rows/s, "
              f"{size:.0f} MB of CSV)")
        print(f"peak RSS: {before:.0f} MB before the export, {peak_rss_mb():.0f} MB after; "
              f"load average now {os.getloadavg()[0]:.1f}")
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
