"""Small generated images with chosen EXIF, for scan, rescan and CLI tests."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image as PILImage


def make_jpeg(path: Path, *, original=None, datetime=None, offset=None, offset_original=None,
              size=(64, 48), trailer: bytes = b"") -> Path:
    exif = PILImage.Exif()
    if datetime:
        exif[306] = datetime
    sub = exif.get_ifd(0x8769)
    if original:
        sub[36867] = original
    if offset:
        sub[36880] = offset
    if offset_original:
        sub[36881] = offset_original
    buf = io.BytesIO()
    PILImage.new("RGB", size, (180, 170, 160)).save(buf, "JPEG", exif=exif, quality=85)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue() + trailer)
    return path


def downscaled_jpeg(src: Path, side: int, quality: int = 90) -> bytes:
    """``src`` re-encoded as a JPEG whose longest side is at most ``side``, EXIF kept (so
    capture times survive); decoded at reduced size (``draft``), so 4K originals are cheap."""
    with PILImage.open(src) as im:
        exif = im.info.get("exif")
        im.draft("RGB", (side, side))
        im = im.convert("RGB")
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def save_downscaled(src: Path, dst: Path, side: int, *, keep_mtime: bool = False) -> Path:
    """Write ``downscaled_jpeg(src, side)`` to ``dst``; ``keep_mtime`` copies the file times
    too (for tests of the mtime fallback and of rescans)."""
    dst.write_bytes(downscaled_jpeg(src, side))
    if keep_mtime:
        st = Path(src).stat()
        os.utime(dst, (st.st_atime, st.st_mtime))
    return dst
