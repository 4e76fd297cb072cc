"""What an integrity check at open costs: ``PRAGMA quick_check`` on a ~1 GB catalogue.

    .venv/bin/python benchmarks/bench_quick_check.py [--size-mb 1000] [--keep FILE] [--cold]

Builds a catalogue of the real schema (images, detections with every index, one
classification per detection with top-5 labels and scores, as the engine writes them) until
the file reaches ``--size-mb``, then times, in one run:

- ``PRAGMA quick_check`` (what ``open_database`` runs), three times, page cache warm;
- with ``--cold``, once more with the page cache emptied first (needs root and
  ``/proc/sys/vm/drop_caches``; it empties the cache of the whole machine, so it is not the
  default on a shared one);
- ``PRAGMA integrity_check`` once, for comparison (it also checks every index entry);
- ``open_database`` with and without the check, i.e. what a user waits for.

``--keep FILE`` reuses (or leaves) the catalogue at FILE instead of a temporary one.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trapgui.db import integrity, open_database  # noqa: E402

LABELS = [f"Genus{i} species{i}" for i in range(400)]


def build(path: Path, size_mb: int) -> None:
    open_database(path).close()  # the real schema, every index
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("INSERT INTO deployments (id, path, name, created_at, kind, night_cutoff_hour) "
                "VALUES (1, '/bench/trap', 'trap', '2024-01-01 00:00:00', 'local', 12)")
    con.execute("INSERT INTO pipeline_configs (id, key, name, config, created_at) "
                "VALUES (1, 'k', 'bench', '{}', '2024-01-01 00:00:00')")
    image_id = det_id = 0
    while path.stat().st_size + _wal_size(path) < size_mb * 1e6:
        con.execute("BEGIN")
        images, dets, cls = [], [], []
        for _ in range(2000):
            image_id += 1
            images.append((image_id, 1, f"2024/06/{image_id:08d}-snapshot.jpg", 3_000_000,
                           1.7e9 + image_id, 4096, 2160, "2024-06-01 22:00:00", "exif_datetime",
                           "ok", "2024-06-02 00:00:00"))
            for k in range(30):
                det_id += 1
                label = LABELS[(det_id * 7) % len(LABELS)]
                dets.append((det_id, image_id, 1, 10.0 * k, 20.0, 10.0 * k + 60, 95.0,
                             0.5 + k / 100, "builtin", "moth", 0.9, label, 0.8, "species"))
                top = [LABELS[(det_id + j) % len(LABELS)] for j in range(5)]
                cls.append((det_id, det_id, "species_model", "species", label, 0.8,
                            json.dumps(top), json.dumps([0.8, 0.1, 0.05, 0.03, 0.02])))
        con.executemany("INSERT INTO images (id, deployment_id, rel_path, size, mtime, width, "
                        "height, captured_at, time_source, state, scanned_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)", images)
        con.executemany("INSERT INTO detections (id, image_id, pipeline_id, x1, y1, x2, y2, "
                        "score, detector, binary_label, binary_score, top_label, top_score, "
                        "top_rank) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", dets)
        con.executemany("INSERT INTO classifications (id, detection_id, model, rank, label, "
                        "score, top_labels, top_scores) VALUES (?,?,?,?,?,?,?,?)", cls)
        con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    print(f"built {path.stat().st_size / 1e6:.0f} MB: {image_id} images, {det_id} detections "
          f"and classifications")


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def warm_page_cache(path: Path) -> None:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=False)


def timed_pragma(path: Path, pragma: str) -> tuple[float, str]:
    con = sqlite3.connect(path)
    try:
        t = time.perf_counter()
        rows = con.execute(pragma).fetchall()
        return time.perf_counter() - t, rows[0][0] if rows else ""
    finally:
        con.close()


def timed_open(path: Path, check: bool) -> float:
    t = time.perf_counter()
    db = open_database(path, integrity_check="always" if check else "never")
    elapsed = time.perf_counter() - t
    db.close()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1000)
    ap.add_argument("--keep", metavar="FILE", help="build here (or reuse this catalogue)")
    ap.add_argument("--cold", action="store_true", help="also time it with the page cache "
                    "emptied (root only; affects the whole machine)")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="trapgui-bench-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "catalogue.sqlite3"
        if not path.exists():
            t = time.perf_counter()
            build(path, args.size_mb)
            print(f"  (built in {time.perf_counter() - t:.0f} s)")
        size_mb = path.stat().st_size / 1e6
        print(f"catalogue: {path} ({size_mb:.0f} MB)")
        if args.cold and drop_page_cache():
            s, result = timed_pragma(path, "PRAGMA quick_check")
            print(f"quick_check, cold page cache: {s:6.2f} s  ({size_mb / s:6.0f} MB/s)  {result}")
        elif args.cold:
            print("(cannot empty the page cache here: warm figures only)")
        warm_page_cache(path)
        warm = []
        for _ in range(3):
            s, result = timed_pragma(path, "PRAGMA quick_check")
            warm.append(s)
        best = min(warm)
        print(f"quick_check, warm page cache: {' '.join(f'{s:.2f}' for s in warm)} s  "
              f"(best {size_mb / best:.0f} MB/s)  {result}")
        s, result = timed_pragma(path, "PRAGMA integrity_check")
        print(f"integrity_check, warm:        {s:6.2f} s  ({s / best:.1f}x quick_check)  {result}")
        plain = min(timed_open(path, check=False) for _ in range(3))
        checked = min(timed_open(path, check=True) for _ in range(2))
        t = time.perf_counter()
        open_database(path).close()  # "auto", after a clean close: the check is skipped
        auto = time.perf_counter() - t
        print(f"open_database: {plain:.3f} s without the check, {checked:.2f} s with it, "
              f"{auto:.3f} s with the default policy after a clean close")
        skipped = integrity.record_matches(path)
        print(f"after a clean close the check record matches the file: {skipped}")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
