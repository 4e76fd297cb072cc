"""Scan benchmark: index a synthetic trap tree of small JPEGs with EXIF, then rescan it.

    .venv/bin/python benchmarks/bench_scan.py [--files 100000] [--keep DIR]

Prints files/s for the first scan (every header read, every row inserted) and for a rescan
with nothing changed (one stat per file, one query, nothing opened or written). Goals from
the foundation issue: first scan <= 60 s and rescan <= 5 s for 100,000 files on 2 cores.
The page cache is warm (the files were just written): a first scan from a slow SD card is
bounded by the card instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from trapgui.db import open_database  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402

PLACEHOLDER = "2000:01:01 00:00:00"
PER_NIGHT = 300  # a capture every 2 minutes for 10 hours


def template_jpeg() -> tuple[bytes, list[int]]:
    """A 64x48 JPEG whose EXIF holds the same placeholder date twice (DateTime and
    DateTimeOriginal); returns the bytes and the offsets of the placeholders to patch."""
    exif = Image.Exif()
    exif[306] = PLACEHOLDER
    exif.get_ifd(0x8769)[36867] = PLACEHOLDER
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 190, 170)).save(buf, "JPEG", exif=exif, quality=80)
    data = buf.getvalue()
    marker = PLACEHOLDER.encode()
    offsets, start = [], 0
    while (i := data.find(marker, start)) >= 0:
        offsets.append(i)
        start = i + 1
    assert len(offsets) == 2, offsets
    return data, offsets


def generate(root: Path, n: int) -> None:
    data, offsets = template_jpeg()
    buf = bytearray(data)
    first_night = dt.datetime(2022, 5, 1, 20, 0)
    for i in range(n):
        night, k = divmod(i, PER_NIGHT)
        when = first_night + dt.timedelta(days=night, minutes=2 * k)
        stamp = when.strftime("%Y:%m:%d %H:%M:%S").encode()
        for off in offsets:
            buf[off:off + 19] = stamp
        folder = root / (first_night + dt.timedelta(days=night)).strftime("%Y-%m-%d")
        if k == 0:
            folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{when:%Y%m%d%H%M%S}-snapshot.jpg", "wb") as fh:
            fh.write(buf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="trapgui-bench-"))
    trap = base / "trap"
    try:
        t = time.perf_counter()
        generate(trap, args.files)
        print(f"generated {args.files} JPEGs in {time.perf_counter() - t:.1f} s "
              f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
        db = open_database(base / "bench.sqlite3")
        t = time.perf_counter()
        first = scan_folder(db, trap)
        t_first = time.perf_counter() - t
        assert first.added == args.files and first.undated == 0, first
        t = time.perf_counter()
        again = scan_folder(db, trap)
        t_again = time.perf_counter() - t
        assert again.unchanged == args.files and not again.wrote_anything, again
        print(f"first scan : {t_first:7.2f} s  {args.files / t_first:9.0f} files/s  "
              f"({first.nights} nights)")
        print(f"rescan     : {t_again:7.2f} s  {args.files / t_again:9.0f} files/s  "
              "(nothing changed, nothing written)")
        print(f"ratio      : rescan is {t_first / t_again:.0f}x faster than the first scan; "
              f"load average now {os.getloadavg()[0]:.1f}")
        db.close()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
