"""A trap folder of bad inputs: every kind of file a camera, a card reader, a copy tool or a
person can leave where trap images are expected, each with what trapgui must make of it.

``make_corpus(folder)`` writes the files and returns one :class:`Kind` per entry on disk
(a kind may be several files, e.g. two links pointing at each other). ``outcome`` is what the
catalogue must show after ``trapgui process`` (built-in detector, no classifier):

- ``"done"``: catalogued as ``ok`` and processed (results stored, possibly no insects);
- ``"failed"``: catalogued as ``ok`` (its header is fine) but processing failed, with a reason;
- ``"unreadable"``: catalogued as ``unreadable`` at scan time, with the reason.

``reason`` is a piece of the expected reason. ``needs_no_dac`` kinds (permission denied) need
the process reading them to run without root's permission override (see ``drop_root_dac``).
"""

from __future__ import annotations

import ctypes
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Kind:
    name: str
    files: tuple[str, ...]  # paths relative to the corpus folder, as os.fsdecode gives them
    outcome: str  # "done" | "failed" | "unreadable"
    reason: str = ""  # a piece of the reason (unreadable / failed)
    needs_no_dac: bool = False


def _jpeg(size=(96, 64), colour=(180, 170, 160), **save) -> bytes:
    buf = io.BytesIO()
    sheet = Image.new("RGB", size, colour)
    sheet.paste((40, 30, 20), (size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2))  # a "moth"
    sheet.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (8-bit gray) with almost no data:
    what a decompression bomb or a damaged header looks like to a reader."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) claims another size."""
    data = bytearray(_jpeg((16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _tiff_from_array(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.frombytes(mode, (array.shape[1], array.shape[0]), array.tobytes()).save(buf, "TIFF")
    return buf.getvalue()


def gradient16(width=96, height=64) -> np.ndarray:
    """0..65535 across the image: 16-bit data that must not decode to solid white."""
    ramp = np.linspace(0, 65535, width * height).round().astype(np.uint32)
    return ramp.reshape(height, width)


def _exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[36867] = "2022:06:22 22:30:00"
    return _jpeg((96, 64), exif=exif)


def _garbage_dates_jpeg(value: str) -> bytes:
    exif = Image.Exif()
    exif[306] = value
    exif.get_ifd(0x8769)[36867] = value
    exif.get_ifd(0x8769)[36881] = "+99:99"
    return _jpeg(exif=exif)


def _corrupt_entropy_jpeg() -> bytes:
    """Scan data overwritten but the end marker intact: the header and tail look fine, the
    pixels cannot be decoded (Pillow: "broken data stream")."""
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG", quality=95)
    data = bytearray(buf.getvalue())
    for i in range(700, len(data) - 10, 7):
        data[i] = 0xFF
    return bytes(data)


def _write(folder: Path, rel: str, data: bytes) -> str:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel


def make_corpus(folder: Path) -> list[Kind]:
    folder.mkdir(parents=True, exist_ok=True)
    kinds: list[Kind] = []

    def add(name, rel, data, outcome, reason=""):
        kinds.append(Kind(name, (_write(folder, rel, data),), outcome, reason))

    add("plain JPEG (control)", "20220622220000-ok.jpg", _jpeg(), "done")
    add("empty file", "20220622220100-empty.jpg", b"", "unreadable", "empty file")
    whole = _jpeg((256, 192))
    add("truncated JPEG", "20220622220200-cut.jpg", whole[: len(whole) // 2], "unreadable",
        "truncated")
    png = io.BytesIO()
    Image.new("RGB", (256, 192), (90, 120, 30)).save(png, "PNG")
    add("truncated PNG", "20220622220300-cut.png", png.getvalue()[:-40], "unreadable",
        "truncated")
    tif = _tiff_from_array(np.full((192, 256, 3), 120, np.uint8), "RGB")
    add("truncated TIFF", "20220622220400-cut.tif", tif[: len(tif) // 2], "failed",
        "cannot be decoded")
    add("text renamed .jpg", "20220622220500-notes.jpg", b"field notes, not a photo\n" * 20,
        "unreadable", "not an image")
    add("WebP renamed .jpg", "20220622220510-webp.jpg", b"RIFF\x24\x00\x00\x00WEBPVP8 " +
        b"\x00" * 40, "unreadable", "not an image")
    add("huge declared PNG (120 MP)", "20220622220600-huge.png", png_declaring(12000, 10000),
        "unreadable", "the image is too large: 120 megapixels")
    add("huge declared JPEG (4 GP)", "20220622220700-huge.jpg", jpeg_declaring(65000, 65000),
        "unreadable", "the image is too large: more than 200 megapixels")
    add("zero-size PNG header", "20220622220710-zero.png", png_declaring(0, 0), "unreadable")
    cmyk = io.BytesIO()
    Image.new("CMYK", (96, 64), (0, 40, 80, 20)).save(cmyk, "JPEG")
    add("CMYK JPEG", "20220622220800-cmyk.jpg", cmyk.getvalue(), "done")
    gray = io.BytesIO()
    Image.new("L", (96, 64), 170).save(gray, "PNG")
    add("grayscale PNG", "20220622220900-gray.png", gray.getvalue(), "done")
    pal = Image.new("P", (96, 64), 1)
    pal.putpalette([0, 0, 0, 200, 190, 180] + [0] * 762)
    pal.info["transparency"] = bytes([0, 128] + [255] * 254)
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    add("palette PNG with alpha", "20220622221000-palette.png", buf.getvalue(), "done")
    buf = io.BytesIO()
    Image.new("LA", (96, 64), (160, 100)).save(buf, "PNG")
    add("gray + alpha PNG", "20220622221100-la.png", buf.getvalue(), "done")
    buf = io.BytesIO()
    Image.new("1", (96, 64), 1).save(buf, "TIFF")
    add("1-bit TIFF", "20220622221200-bw.tif", buf.getvalue(), "done")
    add("16-bit TIFF (I;16)", "20220622221300-16bit.tif",
        _tiff_from_array(gradient16().astype("<u2"), "I;16"), "done")
    add("16-bit TIFF, big-endian (I;16B)", "20220622221400-16bitbe.tif",
        _tiff_from_array(gradient16().astype(">u2"), "I;16B"), "done")
    add("32-bit integer TIFF (I)", "20220622221500-32bit.tif",
        _tiff_from_array(gradient16().astype("<i4"), "I"), "done")
    add("float TIFF (F)", "20220622221600-float.tif",
        _tiff_from_array((gradient16() / 65535).astype("<f4"), "F"), "done")
    for orientation in (3, 6, 8):
        add(f"EXIF orientation {orientation}", f"IMG_ORIENT_{orientation}.jpg",
            _exif_jpeg(orientation), "done")
    add("garbage EXIF dates", "IMG_GARBAGE_DATE.jpg", _garbage_dates_jpeg("garbage!"), "done")
    add("zero EXIF dates", "IMG_ZERO_DATE.jpg", _garbage_dates_jpeg("0000:00:00 00:00:00"),
        "done")
    add("impossible EXIF dates", "IMG_BAD_DATE.jpg", _garbage_dates_jpeg("2022:13:45 99:99:99"),
        "done")
    add("corrupt JPEG data, intact end", "20220622221700-corrupt.jpg", _corrupt_entropy_jpeg(),
        "failed", "cannot be decoded")
    add("JPEG with data after its end", "20220622221800-trailer.jpg",
        _jpeg() + b"\x00" * 3000 + b"MAKERNOTES", "done")
    add("PNG named .jpg", "20220622221900-png.jpg", gray.getvalue(), "done")

    os.mkfifo(folder / "20220622222000-pipe.jpg")
    kinds.append(Kind("FIFO", ("20220622222000-pipe.jpg",), "unreadable", "not a regular file"))
    add("folder named x.jpg (its image)", "x.jpg/20220622222100-inside.jpg", _jpeg(), "done")
    os.symlink(folder / "gone.jpg", folder / "20220622222200-broken.jpg")
    kinds.append(Kind("broken link", ("20220622222200-broken.jpg",), "unreadable", "broken link"))
    os.symlink("20220622222300-self.jpg", folder / "20220622222300-self.jpg")
    kinds.append(Kind("link to itself", ("20220622222300-self.jpg",), "unreadable",
                      "link loops back on itself"))
    os.symlink("20220622222500-b.jpg", folder / "20220622222400-a.jpg")
    os.symlink("20220622222400-a.jpg", folder / "20220622222500-b.jpg")
    kinds.append(Kind("two links to each other", ("20220622222400-a.jpg", "20220622222500-b.jpg"),
                      "unreadable", "link loops back on itself"))
    os.symlink("20220622220000-ok.jpg", folder / "20220622222600-good-link.jpg")
    kinds.append(Kind("link to a good image", ("20220622222600-good-link.jpg",), "done"))

    add("name not valid UTF-8", os.fsdecode(b"20220622222700-caf\xe9.jpg"), _jpeg(), "done")
    add("folder name not valid UTF-8", os.fsdecode(b"nuit-\xff/20220622222800.jpg"), _jpeg(),
        "done")
    add("terminal escapes in the name", "20220622222900-\x1b[2J\x1b]0;owned\x07.jpg", _jpeg(),
        "done")
    add("right-to-left override in the name", "20220622223000-\u202egpj.exe.jpg", _jpeg(), "done")
    add("unreadable, with escapes in the name", "20220622223100-\x1b[31mred\r.jpg", b"",
        "unreadable", "empty file")

    locked = _write(folder, "20220622223200-locked.jpg", _jpeg())
    os.chmod(folder / locked, 0o000)
    kinds.append(Kind("permission denied", (locked,), "unreadable", "permission denied",
                      needs_no_dac=True))
    return kinds


def drop_root_dac() -> None:
    """For ``preexec_fn``: a root child loses the capabilities that let root read any file
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so permission denied really happens. Tests run
    as root in CI; an ordinary user needs nothing (chmod 000 already stops it)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
