"""Camtrap DP export benchmark: a catalogue of N detections (100,000 by default) exported to a
Camtrap DP package; goal from issue 15: <= 30 s, constant memory.

    .venv/bin/python benchmarks/bench_camtrap_export.py [--detections 100000] [--validate]

The catalogue: one trap (coordinates, camera clock), 5 detections per image, 200 images per
night, one occurrence (individual) per 10 detections, a species label on each; every image
processed. Each export runs in a fresh child process that reports its peak resident memory
before the export (imports, open catalogue) and after it, for a tenth of the nights and for all
of them: a streamed export peaks at about the same RSS for both (ten times the rows).
``--validate`` also checks the package with frictionless against the local standard (slow; not
part of the timing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PER_IMAGE = 5
IMAGES_PER_NIGHT = 200
PER_OCCURRENCE = 10
CHUNK = 10_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory now (Linux); the peak elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return peak_rss_mb()


def build(path: Path, n: int) -> None:
    from sqlalchemy import insert, select

    from trapgui.db import jobqueue, open_database
    from trapgui.db.tables import Deployment, Detection, Image, Job, Night, Occurrence
    from trapgui.db.trap_metadata import update_trap

    db = open_database(path)
    n_images = max(1, n // PER_IMAGE)
    n_nights = max(1, n_images // IMAGES_PER_NIGHT)
    config = {"format": 1, "detector": "builtin", "binary": "bin", "species": "sp",
              "order": None}
    pid = jobqueue.get_or_create_pipeline(db, "bench", "builtin + bin + sp", config)
    run = jobqueue.start_run(db, pid, models={"builtin": {"name": "Built-in", "version": "1"},
                                              "sp": {"name": "Species", "version": "2"}},
                             devices=["cpu"], settings={}, app_version="bench")
    t0 = dt.datetime(2022, 6, 1, 20, 0)
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path="/bench/trap", name="trap")
                        .returning(Deployment.id)).scalar_one()
        nights = s.execute(insert(Night).returning(Night.id), [
            {"deployment_id": dep, "date": (t0 + dt.timedelta(days=k)).date(),
             "start": t0 + dt.timedelta(days=k),
             "end": t0 + dt.timedelta(days=k, minutes=2 * (IMAGES_PER_NIGHT - 1))}
            for k in range(n_nights)]).scalars().all()
        images = []
        for i in range(n_images):
            night, k = divmod(i, IMAGES_PER_NIGHT)
            night = min(night, n_nights - 1)
            images.append({"deployment_id": dep, "night_id": nights[night],
                           "rel_path": f"{night:04d}/{i:07d}.jpg", "size": 1, "mtime": 1.0,
                           "width": 4096, "height": 2160, "time_source": "filename",
                           "captured_at": t0 + dt.timedelta(days=night, minutes=2 * k)})
        for part in range(0, n_images, CHUNK):
            s.execute(insert(Image), images[part:part + CHUNK])
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
        night_of = dict(s.execute(select(Image.id, Image.night_id)).all())
        s.execute(insert(Job), [{"image_id": i, "pipeline_id": pid, "state": "done",
                                 "run_id": run} for i in ids])
        n_occ = max(1, n // PER_OCCURRENCE)
        occ_rows = []
        for o in range(n_occ):
            first = ids[min(n_images - 1, (o * PER_OCCURRENCE) // PER_IMAGE)]
            seen = images[min(n_images - 1, (o * PER_OCCURRENCE) // PER_IMAGE)]["captured_at"]
            occ_rows.append({"id": o + 1, "pipeline_id": pid, "deployment_id": dep,
                             "night_id": night_of[first], "n_detections": PER_OCCURRENCE,
                             "first_seen": seen, "last_seen": seen + dt.timedelta(minutes=20),
                             "label": f"Species {o % 300}", "label_rank": "species",
                             "label_score": 0.4 + (o % 60) / 100, "updated_at": 1.7e9})
        for part in range(0, n_occ, CHUNK):
            s.execute(insert(Occurrence), occ_rows[part:part + CHUNK])
        det_rows = []
        for d in range(n):
            image = ids[min(n_images - 1, d // PER_IMAGE)]
            k = d % PER_IMAGE
            # consecutive images' k-th boxes form a track, as a tracker would link them
            occ = min(n_occ, (d // (PER_IMAGE * PER_OCCURRENCE)) * PER_IMAGE + k + 1)
            det_rows.append({"id": d + 1, "image_id": image, "pipeline_id": pid, "run_id": run,
                             "x1": 100.0 + 300 * k, "y1": 200.0, "x2": 260.0 + 300 * k,
                             "y2": 330.0, "score": 0.55 + (d % 40) / 100, "detector": "builtin",
                             "top_label": f"Species {occ % 300}", "top_rank": "species",
                             "top_score": 0.7, "occurrence_id": occ})
            if len(det_rows) == CHUNK:
                s.execute(insert(Detection), det_rows)
                det_rows = []
        if det_rows:
            s.execute(insert(Detection), det_rows)
        s.execute(Occurrence.__table__.update().values(best_detection_id=Occurrence.id * 1))
    jobqueue.finish_run(db, run, status="finished", images_done=n_images, images_failed=0)
    update_trap(db, dep, {"latitude": "44.4759", "longitude": "-73.2121",
                          "clock": "America/New_York"})
    db.close()


def child(db_path: str, out: str, nights: int | None) -> None:
    """Export in this (fresh) process; print a JSON line with the figures."""
    from sqlalchemy import select

    from trapgui.db import open_database
    from trapgui.db.export_queries import ExportScope, Thresholds
    from trapgui.db.tables import Night
    from trapgui.export.camtrap_dp import export_camtrap_dp
    from trapgui.export.common import ExportRun

    db = open_database(db_path)
    scope = ExportScope()
    if nights:
        with db.session() as s:
            ids = list(s.scalars(select(Night.id).order_by(Night.date).limit(nights)))
        scope = ExportScope.of(night_ids=ids)
    before, now = peak_rss_mb(), rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    result = export_camtrap_dp(ExportRun.start(db, scope, Thresholds()), Path(out))
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(json.dumps({"seconds": took, "cpu": cpu, "rows": result.rows, "rss_before": before,
                      "rss_after": peak_rss_mb(), "rss_now_before": now,
                      "rss_now_after": rss_mb()}))
    db.close()


def run_child(db_path: Path, out: Path, nights: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(db_path), str(out)]
    if nights:
        cmd += ["--nights", str(nights)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                      "PYTHONPATH": str(REPO)})
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detections", type=int, default=100_000)
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--nights", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.nights)
        return 0
    n = args.detections
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="trapgui-bench-") as tmp:
        db_path = Path(tmp) / "catalogue.sqlite3"
        t = time.perf_counter()
        build(db_path, n)
        n_nights = max(1, n // PER_IMAGE // IMAGES_PER_NIGHT)
        print(f"set-up: {n:,} detections, {n // PER_OCCURRENCE:,} individuals, "
              f"{n // PER_IMAGE:,} images in {n_nights} nights: {time.perf_counter() - t:.1f} s")
        tenth = run_child(db_path, Path(tmp) / "tenth", max(1, n_nights // 10))
        full = run_child(db_path, Path(tmp) / "full", None)
        for name, r in (("a tenth of the nights", tenth), ("every night", full)):
            rows = r["rows"]
            print(f"export of {name}: {rows['media']:,} media, {rows['observations']:,} "
                  f"observations in {r['seconds']:.1f} s ({r['cpu']:.1f} s CPU); peak RSS "
                  f"{r['rss_before']:.0f} MB before, {r['rss_after']:.0f} MB after "
                  f"(+{r['rss_after'] - r['rss_before']:.0f} MB); resident "
                  f"{r['rss_now_before']:.0f} -> {r['rss_now_after']:.0f} MB")
        growth = (full["rss_after"] - full["rss_before"]) / max(
            1.0, tenth["rss_after"] - tenth["rss_before"])
        print(f"memory growth, all nights vs a tenth: x{growth:.2f} for "
              f"x{full['rows']['observations'] / max(1, tenth['rows']['observations']):.1f} "
              f"the rows; goal <= 30 s: {'met' if full['seconds'] <= 30 else 'NOT met'} "
              f"({full['seconds']:.1f} s)")
        size = sum(p.stat().st_size for p in (Path(tmp) / "full").iterdir()) / 1e6
        print(f"package size {size:.0f} MB; load average now {os.getloadavg()[0]:.1f}")
        if args.validate:
            sys.path.insert(0, str(REPO / "tests"))
            sys.path.insert(0, str(REPO))
            from tests.camtrap_validation import validate

            t = time.perf_counter()
            problems = validate(Path(tmp) / "full")
            print(f"frictionless + jsonschema: {len(problems)} problems "
                  f"({time.perf_counter() - t:.0f} s){': ' + problems[0] if problems else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
