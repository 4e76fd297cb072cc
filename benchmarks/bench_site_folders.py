"""How long finding the site subfolders of a big folder takes (``scan.site_folders``).

    .venv/bin/python benchmarks/bench_site_folders.py [--files 40000] [--sites 4]

Builds a folder of ``--sites`` site subfolders, each with nightly subfolders of empty files
named like AMI snapshots (the rule reads names only, never these files' contents), plus one
site of DSLR names (``DSC_0001.JPG``, tiny real JPEGs with EXIF: the case that reads headers),
then times ``find_site_folders`` cold-ish (first call) and warm (the second). Goal from the
brief: well under a second or two for 40,000 images. Prints the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from trapgui.scan.site_folders import find_site_folders  # noqa: E402


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2022:07:18 22:00:00"
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (180, 170, 160)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def build(root: Path, files: int, sites: int) -> None:
    per_site = files // (sites + 1)
    start = dt.datetime(2022, 6, 1, 21)
    for s in range(sites):
        for i in range(per_site):
            when = start + dt.timedelta(days=i // 300, minutes=2 * (i % 300))
            night = root / f"site{s}" / f"{start + dt.timedelta(days=i // 300):%Y_%m_%d}"
            if i % 300 == 0:
                night.mkdir(parents=True, exist_ok=True)
            (night / f"{when:%Y%m%d%H%M%S}-{i:05d}-snapshot.jpg").touch()
    dslr = root / "dslr"
    dslr.mkdir()
    data = _exif_jpeg()
    for i in range(files - per_site * sites):
        (dslr / f"DSC_{i:05d}.JPG").write_bytes(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=40_000)
    ap.add_argument("--sites", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        build(root, args.files, args.sites)
        print(f"built {args.files:,} files in {args.sites + 1} sites in "
              f"{time.perf_counter() - t0:.1f} s")
        for label in ("first", "second"):
            t0 = time.perf_counter()
            layout = find_site_folders(root)
            took = time.perf_counter() - t0
            print(f"{label} call: {took:.3f} s for {args.files:,} images "
                  f"({args.files / took:,.0f} images/s): {layout.describe()}")


if __name__ == "__main__":
    main()
