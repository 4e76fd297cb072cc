"""Which immediate subfolders of a folder are trap sites of their own (one trap each).

A folder such as ``moths/`` holding ``vermont/``, ``panama/``, ``sequential/`` and ``DSLR/``,
each with the dated images of its own camera, is several traps, not one. The rule, in order:

1. A subfolder without image files (at any depth) is nothing: not a site, nothing to catalogue.
2. A subfolder **named only by a date or a period** is part of one trap's timeline, never a
   site, whatever it holds: ``2022_07_18``, ``2022-07-18``, ``20220718``, ``18.07.2022``,
   ``2022-07``, ``2022``, ``night3``, ``night_2022-07-18``, ``2022-07-18T20``. Traps write (or
   researchers sort) a night's images into such folders, and card offloads named by their date
   may hold several nights of the same trap.
3. Any other subfolder is a site when it holds **dated trap images** (at least
   ``MIN_SITE_IMAGES``: a single photo is no trap's night, e.g. a stray picture kept aside):
   a capture time in the
   file names (``20220622200400-01-snapshot.jpg``), nightly subfolders of its own (rule 2
   names), or, when neither, an EXIF capture time in one of a few probed files (a DSLR's
   ``DSC_0390.JPG``). A name like ``vermont`` or ``trap-2`` says where or which camera, not
   when; its images spanning one night or many makes no difference.
4. Subfolders with images that are not sites (night folders, undated images) and images lying
   directly in the folder stay with the folder's own trap: nothing is ever left out.

Splitting is offered (``SiteLayout.splits``) only when at least two subfolders are sites.

Cheap by design: directory listings only (no ``stat`` per file), a capture time parsed from
at most ``NAME_SAMPLE`` file names per subfolder, and at most ``PROBES`` EXIF headers read
where the names say nothing. A folder of 40,000 images answers in a fraction of a second.
Pure Python (no catalogue, no Qt): callers run it off the GUI thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from trapgui.core.file_names import to_stored
from trapgui.core.timeparse import MAX_YEAR, MIN_YEAR, parse_filename_time
from trapgui.core.types import TimeSource
from trapgui.scan.files import FoundFile, is_image_name, probe_file

MIN_SITE_IMAGES = 2
NAME_SAMPLE = 64  # file names parsed per subfolder, spread over its listing
PROBES = 3  # EXIF headers read per subfolder when no sampled name holds a time
_WORDS_OF_TIME = frozenset({"night", "nights", "nacht", "nuit", "noche", "notte", "date", "t"})
_EXIF_SOURCES = (TimeSource.EXIF_ORIGINAL, TimeSource.EXIF_DATETIME)


@dataclass(frozen=True, slots=True)
class Subfolder:
    """One immediate subfolder and what the rule found in it."""

    name: str  # as stored (core.file_names.to_stored)
    path: str  # absolute, as the OS spells it
    images: int  # files with an image extension below it, all depths
    time_named: bool  # named by a date or period: part of a trap's timeline
    dated: bool  # capture times in its names, EXIF or nightly subfolders

    @property
    def is_site(self) -> bool:
        return self.images >= MIN_SITE_IMAGES and self.dated and not self.time_named


@dataclass(frozen=True, slots=True)
class SiteLayout:
    folder: str  # absolute, as the OS spells it
    sites: tuple[Subfolder, ...]  # sorted by name
    others: tuple[Subfolder, ...]  # subfolders with images that stay with the folder's trap
    loose_images: int  # image files directly in the folder

    @property
    def splits(self) -> bool:
        """At least two sites: one trap per site is worth offering."""
        return len(self.sites) >= 2

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    @property
    def images_outside_sites(self) -> int:
        """Images that would make the folder's own trap after a split."""
        return self.loose_images + sum(o.images for o in self.others)

    def describe(self, limit: int = 4) -> str:
        """``4 trap sites (vermont, panama, sequential, DSLR)``; longer lists end in ``…``."""
        names = self.site_names
        shown = ", ".join(names[:limit]) + (", …" if len(names) > limit else "")
        return f"{len(names)} trap site{'s' * (len(names) != 1)} ({shown})"


def is_time_name(name: str) -> bool:
    """A folder name that says only when (rule 2 of the module docstring)."""
    lowered = name.lower()
    if any(word not in _WORDS_OF_TIME for word in re.findall(r"[a-z]+", lowered)):
        return False
    numbers = re.findall(r"\d+", lowered)
    if not numbers:
        return False
    if re.search(r"[a-z]", lowered) and all(len(n) <= 3 for n in numbers):
        return True  # night3, night_02
    return _is_period("".join(numbers)) or _is_period_day_first(numbers)


def _is_period(digits: str) -> bool:
    """``2022``, ``202207``, ``20220718`` (and a time after it) as year[month[day]]."""
    if len(digits) < 4 or not MIN_YEAR <= int(digits[:4]) <= MAX_YEAR:
        return False
    if len(digits) == 4:
        return True
    if len(digits) < 6 or not 1 <= int(digits[4:6]) <= 12:
        return False
    return len(digits) == 6 or (len(digits) >= 8 and 1 <= int(digits[6:8]) <= 31)


def _is_period_day_first(numbers: list[str]) -> bool:
    """``18.07.2022`` / ``18-07-2022``."""
    if len(numbers) < 3 or len(numbers[2]) != 4:
        return False
    day, month, year = (int(n) for n in numbers[:3])
    return 1 <= day <= 31 and 1 <= month <= 12 and MIN_YEAR <= year <= MAX_YEAR


def find_site_folders(folder: str | Path) -> SiteLayout:
    """The sites among ``folder``'s immediate subfolders (rule in the module docstring).

    A subfolder that cannot be listed counts as holding nothing here; the scan itself reports
    it. Hidden folders (``.thumbnails``) are skipped, as the scan does."""
    root = os.fspath(folder)
    loose = 0
    subfolders: list[Subfolder] = []
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: (e.name.casefold(), e.name))
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir and not entry.name.startswith("."):
            subfolders.append(_look_into(entry.path, to_stored(entry.name)))
        elif not is_dir and is_image_name(entry.name) and not entry.name.startswith("._"):
            loose += 1
    with_images = [s for s in subfolders if s.images]
    return SiteLayout(root, tuple(s for s in with_images if s.is_site),
                      tuple(s for s in with_images if not s.is_site), loose)


def _look_into(path: str, name: str) -> Subfolder:
    names, night_folders = _image_names(path)
    time_named = is_time_name(name)
    dated = bool(names) and not time_named and (
        night_folders or _names_hold_time(names) or _exif_holds_time(names))
    return Subfolder(name, path, len(names), time_named, bool(dated))


def _image_names(path: str) -> tuple[list[str], bool]:
    """Paths of the image files below ``path`` (listings only, links followed once) and
    whether an immediate child folder is a night folder holding images."""
    names: list[str] = []
    night_folders = False
    seen: set[tuple[int, int]] = set()
    stack = [(path, True)]
    while stack:
        current, top = stack.pop()
        try:
            st = os.stat(current)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:
                if not entry.name.startswith("."):
                    stack.append((entry.path, False))
                    if top and not night_folders and is_time_name(entry.name):
                        night_folders = _has_images(entry.path)
            elif is_image_name(entry.name) and not entry.name.startswith("._"):
                names.append(entry.path)
    return names, night_folders


def _has_images(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            for entry in it:
                if is_image_name(entry.name) and not entry.name.startswith("._"):
                    return True
                if entry.is_dir() and not entry.name.startswith(".") and _has_images(entry.path):
                    return True
    except OSError:
        return False
    return False


def _spread(items: list[str], count: int) -> list[str]:
    if len(items) <= count:
        return items
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def _names_hold_time(paths: list[str]) -> bool:
    return any(parse_filename_time(os.path.splitext(os.path.basename(p))[0]) is not None
               for p in _spread(paths, NAME_SAMPLE))


def _exif_holds_time(paths: list[str]) -> bool:
    for path in _spread(sorted(paths), PROBES):
        try:
            st = os.stat(path)
        except OSError:
            continue
        found = FoundFile(to_stored(path), path, st.st_size, st.st_mtime)
        if probe_file(found).time_source in _EXIF_SOURCES:
            return True
    return False
