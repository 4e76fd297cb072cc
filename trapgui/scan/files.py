"""Finding image files in a trap folder and reading their headers (never the pixels).

Discovery uses ``os.scandir`` (one stat per file) so a rescan can compare (size, mtime) without
opening anything. ``probe_file`` reads only what Pillow needs for the size and EXIF; a file
that cannot be used still gets a result, with the reason, so it is catalogued and never lost.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import UnidentifiedImageError

from trapgui.core.file_names import to_stored
from trapgui.core.timeparse import resolve_capture_time
from trapgui.core.types import ImageState, TimeSource
from trapgui.scan.pixel_limit import ImageTooLarge, open_image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
_FORMATS = ("JPEG", "PNG", "TIFF")  # the JPEG opener also returns MPO (multi-picture) files

_EXIF_IFD = 0x8769
_TAG_DATETIME = 306
_TAG_DATETIME_ORIGINAL = 36867
_TAG_OFFSET_TIME = 36880
_TAG_OFFSET_TIME_ORIGINAL = 36881
_TAIL_BYTES = 1024


@dataclass(frozen=True, slots=True)
class FoundFile:
    rel_path: str  # POSIX separators, relative to the scanned folder, as stored (to_stored)
    path: str  # absolute, the name as the OS gave it (may hold undecodable bytes)
    size: int
    mtime: float
    problem: str | None = None  # set for things that must not be opened (FIFO, broken link)


@dataclass
class Discovery:
    files: list[FoundFile] = field(default_factory=list)
    folder_errors: list[tuple[str, str]] = field(default_factory=list)  # (rel folder, reason)
    skipped: int = 0  # AppleDouble "._" files and hidden folders


@dataclass(frozen=True, slots=True)
class Probe:
    """What the catalogue stores about one file after reading its header."""

    state: ImageState
    error: str | None
    width: int | None
    height: int | None
    captured_at: object  # datetime | None (kept loose: this crosses process boundaries)
    offset_min: int | None
    time_source: TimeSource
    time_error: str | None


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def discover(folder: Path, exclude: frozenset[str] = frozenset()) -> Discovery:
    """Every file with an image extension below ``folder`` (recursive, symlinks followed once).

    ``exclude``: relative folders (POSIX, as stored) not to enter: traps of their own.

    Hidden folders (``.Trashes``, ``.thumbnails``...) and macOS ``._`` metadata files are skipped:
    they are never trap images. A folder that cannot be listed is reported, not fatal. Names
    that are not valid text are kept, escaped (``core.file_names``); a link with an image name
    that loops back on itself is listed with that problem.
    """
    out = Discovery()
    root = os.fspath(folder)
    seen_dirs: set[tuple[int, int]] = set()
    st = os.stat(root)
    seen_dirs.add((st.st_dev, st.st_ino))
    stack = [(root, "")]
    while stack:
        dir_path, rel_dir = stack.pop()
        try:
            it = os.scandir(dir_path)
        except OSError as exc:
            out.folder_errors.append((to_stored(rel_dir) or ".", _os_reason(exc)))
            continue
        with it:
            subdirs = []
            for entry in it:
                name = entry.name
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    if entry.is_dir():  # follows links; loops stopped by seen_dirs
                        if name.startswith("."):
                            out.skipped += 1
                            continue
                        if exclude and to_stored(rel) in exclude:
                            continue
                        est = entry.stat()
                        key = (est.st_dev, est.st_ino)
                        if key not in seen_dirs:
                            seen_dirs.add(key)
                            subdirs.append((entry.path, rel))
                        continue
                except OSError as exc:
                    if not (is_image_name(name) and not name.startswith("._")):
                        out.folder_errors.append((to_stored(rel), _os_reason(exc)))
                        continue
                    # a link named like an image that cannot be followed: catalogued with why
                    out.files.append(FoundFile(to_stored(rel), entry.path, 0, _lmtime(entry),
                                               _os_reason(exc)))
                    continue
                if not is_image_name(name):
                    continue
                if name.startswith("._"):
                    out.skipped += 1
                    continue
                out.files.append(_found(entry, to_stored(rel)))
            stack.extend(reversed(sorted(subdirs)))
    out.files.sort(key=lambda f: f.rel_path)
    return out


def _found(entry: os.DirEntry, rel: str) -> FoundFile:
    try:
        est = entry.stat()
    except FileNotFoundError:
        try:
            lst = entry.stat(follow_symlinks=False)
        except OSError:  # deleted between listing and stat: catalogued, then missing next scan
            return FoundFile(rel, entry.path, 0, 0.0, "the file disappeared during the scan")
        return FoundFile(rel, entry.path, 0, lst.st_mtime, "broken link: the file it points to "
                         "does not exist")
    except OSError as exc:
        return FoundFile(rel, entry.path, 0, 0.0, _os_reason(exc))
    if not stat.S_ISREG(est.st_mode):
        # opening a FIFO would block forever, a device could be huge: never open these
        return FoundFile(rel, entry.path, 0, est.st_mtime,
                         "not a regular file (a pipe, socket or device)")
    return FoundFile(rel, entry.path, est.st_size, est.st_mtime)


def _lmtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "link loops back on itself"
    return f"cannot be read: {exc.strerror or exc}"


def probe_file(found: FoundFile) -> Probe:
    """Read one file's header: size, EXIF times, and a cheap completeness check."""
    stem = os.path.splitext(os.path.basename(found.path))[0]
    problem = found.problem
    if problem is None and found.size == 0:
        problem = "empty file (0 bytes)"
    header: dict = {}
    if problem is None:
        try:
            header = _read_header(found.path)
        except PermissionError:
            problem = "permission denied"
        except FileNotFoundError:
            problem = "the file disappeared during the scan"
        except UnidentifiedImageError:
            problem = _unidentified_reason(found.path)
        except ImageTooLarge as exc:
            problem = str(exc)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            problem = f"truncated or corrupt ({exc})"
        except Exception as exc:  # noqa: BLE001 - malformed files make Pillow raise anything
            log.warning("Unexpected error reading %s", found.path, exc_info=True)
            problem = f"cannot be read ({type(exc).__name__}: {exc})"
    time = resolve_capture_time(
        exif_original=header.get("original"),
        exif_datetime=header.get("datetime"),
        offset_original=header.get("offset_original"),
        offset_datetime=header.get("offset"),
        stem=stem,
        mtime=found.mtime,
    )
    return Probe(
        state=ImageState.UNREADABLE if problem else ImageState.OK,
        error=problem,
        width=header.get("width"),
        height=header.get("height"),
        captured_at=time.local,
        offset_min=time.offset_min,
        time_source=time.source,
        time_error=time.error,
    )


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*")


def _unidentified_reason(path: str) -> str:
    """Pillow says "unidentified" both for a text file and for a photo cut off in its header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        head = b""
    if head.startswith(_SIGNATURES):
        return "truncated or corrupt (the file ends inside its header)"
    return "not an image (the contents are not JPEG, PNG or TIFF)"


def _read_header(path: str) -> dict:
    with open(path, "rb") as fh:
        with open_image(fh, formats=_FORMATS) as im:
            info = {"width": im.width, "height": im.height}
            exif = im.getexif()
            info["datetime"] = exif.get(_TAG_DATETIME)
            sub = exif.get_ifd(_EXIF_IFD)
            info["original"] = sub.get(_TAG_DATETIME_ORIGINAL)
            info["offset"] = sub.get(_TAG_OFFSET_TIME)
            info["offset_original"] = sub.get(_TAG_OFFSET_TIME_ORIGINAL)
            if not _tail_looks_complete(fh, im.format):
                # Only suspicious files pay for a (reduced-size) decode, which tells a
                # truncated file from one with harmless data after its end marker.
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    return info


def _tail_looks_complete(fh, fmt: str | None) -> bool:
    if fmt not in ("JPEG", "MPO", "PNG"):
        return True  # TIFF strips can sit anywhere: no cheap end check
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    fh.seek(max(0, end - _TAIL_BYTES))
    tail = fh.read()
    return (b"IEND" in tail) if fmt == "PNG" else (b"\xff\xd9" in tail)


def probe_many(files: Iterable[FoundFile]) -> list[Probe]:
    """Probe a chunk of files (the unit of work sent to a header-reading process)."""
    return [probe_file(f) for f in files]


def iter_chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
