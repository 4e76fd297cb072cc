"""Tracking one night of 100,000 detections as the job does it: database reads, the tracker,
fixture flags against the trap's other nights, and the one write transaction (goal <= 10 s).

    .venv/bin/python benchmarks/bench_tracking_job.py [--detections 100000] [--per-image 250]
                                                      [--rounds 2]

The night is ``bench_tracking.make_night`` (resting and walking insects, 128-value embeddings,
binary + species top-3 labels, sharpness), written into a real SQLite catalogue (WAL) through
the engine's own result writer before the clock starts. Timed: ``track_catalogue_nights`` on
that night; the first round creates the occurrences, later rounds replace them (a re-track).
Prints wall and process CPU time, and the split (read + decode, tracker, write).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from benchmarks.bench_tracking import make_night  # noqa: E402
from trapgui.core.geometry import Box  # noqa: E402
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult  # noqa: E402
from trapgui.db import jobqueue, open_database  # noqa: E402
from trapgui.db.tables import Deployment, Image, Night  # noqa: E402
from trapgui.pipeline.tracking_job import track_catalogue_nights  # noqa: E402
from trapgui.tracking import encode_embedding  # noqa: E402


def build(db, n: int, per_image: int) -> tuple[int, int]:
    images, dets = make_night(n, per_image, 128)
    pid = jobqueue.get_or_create_pipeline(db, "b" * 64, "bench", {})
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path="/bench", name="bench")
                        .returning(Deployment.id)).scalar_one()
        night = s.execute(insert(Night).values(deployment_id=dep, date=images[0].captured.date())
                          .returning(Night.id)).scalar_one()
        s.execute(insert(Image), [dict(id=im.image_id, deployment_id=dep, night_id=night,
                                       rel_path=f"{im.image_id}.jpg", size=1, mtime=0.0,
                                       width=im.width, height=im.height, captured_at=im.captured,
                                       time_source="filename", state="ok") for im in images])
    by_image: dict[int, list] = {}
    for d in dets:
        cls = [ClassificationResult("m-" + rank, rank, top[0][0], top[0][1], [t[0] for t in top],
                                    [t[1] for t in top]) for rank, top in d.labels.items()]
        by_image.setdefault(d.image_id, []).append(DetectionResult(
            Box(*d.box), d.score, "builtin", cls, encode_embedding(d.embedding), d.sharpness))
    results = [ImageResult(i, by_image.get(i, [])) for i in sorted(by_image)]
    for k in range(0, len(results), 50):
        with db.write_session() as s:
            jobqueue.record_results(s, pid, None, results[k:k + 50])
    return pid, night


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--per-image", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(Path(tmp) / "bench.sqlite3")
        start = time.perf_counter()
        pid, night = build(db, args.detections, args.per_image)
        print(f"catalogue written in {time.perf_counter() - start:.1f} s (not timed)")
        for r in range(args.rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            summary = track_catalogue_nights(db, pid, [night])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = summary.nights[0]
            print(f"round {r + 1} ({'create' if r == 0 else 're-track'}): {n.detections:,} "
                  f"detections -> {n.occurrences:,} occurrences: wall {wall:.2f} s, CPU {cpu:.2f} s "
                  f"(tracker {n.track_s:.2f} s, reads and writes {n.total_s - n.track_s:.2f} s)")
        db.close()


if __name__ == "__main__":
    main()
