"""A stand-alone queue worker process for tests/test_queue_kill.py (run with `python FILE`).

It claims batches, "processes" each image (a short sleep standing in for the models), and
completes the batch with a deterministic set of detections per image, under its own
processing run, so the parent can tell which worker's results were kept.

usage: queue_worker.py DB PIPELINE_ID NAME BATCH LEASE_S [--hang-on-batch N] [--ready FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trapgui.core.geometry import Box  # noqa: E402
from trapgui.core.types import (  # noqa: E402
    ClassificationResult,
    DetectionResult,
    ImageResult,
    Rank,
)
from trapgui.db import jobqueue, open_database  # noqa: E402

WORK_S = 0.01  # per image


def detections_for(image_id: int) -> int:
    return image_id % 3 + 1


def result_for(image_id: int) -> ImageResult:
    dets = [DetectionResult(Box(i, i, i + 10, i + 10), 0.5 + i / 10, "builtin",
                            [ClassificationResult("bin", Rank.BINARY, "moth", 0.9)])
            for i in range(detections_for(image_id))]
    return ImageResult(image_id, dets)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("pipeline_id", type=int)
    ap.add_argument("name")
    ap.add_argument("batch", type=int)
    ap.add_argument("lease_s", type=float)
    ap.add_argument("--hang-on-batch", type=int, default=0,
                    help="after claiming this batch (1-based), process half of it and wait to be killed")
    ap.add_argument("--ready", help="file to create when hanging mid-batch")
    args = ap.parse_args()
    db = open_database(args.db)
    run_id = jobqueue.start_run(db, args.pipeline_id, models={"builtin": {"name": "builtin"}},
                             devices=["cpu"], settings={"worker": args.name}, app_version="test")
    batches = 0
    while True:
        claimed = jobqueue.claim(db, args.pipeline_id, args.name, args.batch, args.lease_s)
        if not claimed:
            break
        batches += 1
        results = []
        for n, job in enumerate(claimed):
            if batches == args.hang_on_batch and n == len(claimed) // 2:
                Path(args.ready).write_text(",".join(str(j.image_id) for j in claimed))
                time.sleep(3600)  # mid-batch: the parent sends SIGKILL now
            time.sleep(WORK_S)
            results.append(result_for(job.image_id))
        jobqueue.complete(db, args.pipeline_id, run_id, args.name, results)
    jobqueue.finish_run(db, run_id, status="finished", images_done=0, images_failed=0)
    db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
