"""Small generated images with chosen EXIF, for scan, rescan and CLI tests."""

from __future__ import annotations

import io
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
