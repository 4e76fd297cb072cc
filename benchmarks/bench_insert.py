"""Insert benchmark: 100,000 detection rows into a fresh catalogue, three ways.

    .venv/bin/python benchmarks/bench_insert.py [--rows 100000]

1. bulk insert, ``session.execute(insert(Detection), rows)`` in one transaction (what
   ``jobqueue.complete`` uses), and the same through the Table (``Detection.__table__.insert()``,
   plain Core executemany without the ORM's per-row bookkeeping);
2. ``jobqueue.complete`` for 10,000 claimed images with 10 detections each, including one
   classification per detection (the real result-writing path: job check, deletes, inserts,
   state change, one transaction);
3. ORM ``session.add_all`` of Detection objects, for comparison.
Goal from the foundation issue: 100k rows in a few seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402

from trapgui.core.geometry import Box  # noqa: E402
from trapgui.core.types import (  # noqa: E402
    ClassificationResult,
    DetectionResult,
    ImageResult,
    Rank,
)
from trapgui.db import jobqueue, open_database  # noqa: E402
from trapgui.db.tables import Classification, Deployment, Detection, Image  # noqa: E402

PER_IMAGE = 10


def fresh(base: Path, name: str, n_images: int):
    db = open_database(base / f"{name}.sqlite3")
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path=f"/bench/{name}", name=name).returning(
            Deployment.id)).scalar_one()
        s.execute(insert(Image), [{"deployment_id": dep, "rel_path": f"{i:06d}.jpg", "size": 1,
                                   "mtime": 1.0, "time_source": "none"} for i in range(n_images)])
        ids = list(s.scalars(select(Image.id)))
    pid = jobqueue.get_or_create_pipeline(db, name, name, {})
    return db, pid, ids


def row(image_id: int, pid: int, k: int) -> dict:
    return {"image_id": image_id, "pipeline_id": pid, "run_id": None, "x1": 10.0 * k,
            "y1": 20.0, "x2": 10.0 * k + 50, "y2": 90.0, "score": 0.5 + k / 100,
            "detector": "builtin", "binary_label": "moth", "binary_score": 0.9,
            "top_label": "moth", "top_score": 0.9, "top_rank": "binary"}


def count(db, model) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def report(label: str, rows: int, seconds: float) -> None:
    print(f"{label:<47} {rows:>7} rows  {seconds:7.2f} s  {rows / seconds:9.0f} rows/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    n = ap.parse_args().rows
    n_images = max(1, n // PER_IMAGE)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="trapgui-bench-") as tmp:
        base = Path(tmp)

        db, pid, ids = fresh(base, "core", n_images)
        rows = [row(ids[i % n_images], pid, i // n_images) for i in range(n)]
        t = time.perf_counter()
        with db.write_session() as s:
            s.execute(insert(Detection), rows)
        core_s = time.perf_counter() - t
        assert count(db, Detection) == n
        report("bulk insert(Detection) (one transaction)", n, core_s)
        db.close()

        db, pid, ids = fresh(base, "table", n_images)
        rows = [row(ids[i % n_images], pid, i // n_images) for i in range(n)]
        t = time.perf_counter()
        with db.write_session() as s:
            s.execute(Detection.__table__.insert(), rows)
        table_s = time.perf_counter() - t
        assert count(db, Detection) == n
        report("Detection.__table__.insert() (one transaction)", n, table_s)
        db.close()

        db, pid, ids = fresh(base, "complete", n_images)
        jobqueue.enqueue(db, pid, ids)
        claimed = jobqueue.claim(db, pid, "bench", n_images, 600)
        results = [ImageResult(c.image_id, [DetectionResult(
            Box(10.0 * k, 20, 10.0 * k + 50, 90), 0.5, "builtin",
            [ClassificationResult("bin", Rank.BINARY, "moth", 0.9)]) for k in range(PER_IMAGE)])
            for c in claimed]
        t = time.perf_counter()
        for i in range(0, len(results), 64):  # the engine writes batch by batch
            jobqueue.complete(db, pid, None, "bench", results[i:i + 64])
        complete_s = time.perf_counter() - t
        written = count(db, Detection)
        assert written == n_images * PER_IMAGE and count(db, Classification) == written
        report("jobqueue.complete, batches of 64 images", written, complete_s)
        print(f"{'':<47} (+ {written} classification rows, job updates)")
        db.close()

        db, pid, ids = fresh(base, "orm", n_images)
        rows = [row(ids[i % n_images], pid, i // n_images) for i in range(n)]
        t = time.perf_counter()
        with db.write_session() as s:
            s.add_all([Detection(**r) for r in rows])
        orm_s = time.perf_counter() - t
        assert count(db, Detection) == n
        report("ORM add_all (one transaction)", n, orm_s)
        db.close()
    print(f"bulk insert(Detection) is {orm_s / core_s:.1f}x faster than ORM add_all, "
          f"the Table insert {orm_s / table_s:.1f}x; load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
