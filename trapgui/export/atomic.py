"""Writing exports safely: a temporary name beside the target, renamed at the end.

A cancelled or failed export never leaves a half file (or folder) under the chosen name, and a
previous export there stays untouched until the new one is complete. Bad targets (a folder
where a file is wanted, a missing or read-only parent) become one sentence for the user.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trapgui.core.errors import UserInputError
from trapgui.export.csv_export import _FORMULA_START, _file_mode, _num

# a folder we may replace: empty, or written by trapgui before (it holds this marker file)
FOLDER_MARKER = ".trapgui-export"


def check_file_target(out: str | Path, suffixes: tuple[str, ...], what: str) -> Path:
    out = Path(out).expanduser()
    if out.is_dir():
        raise UserInputError(f"{out} is a folder: give a file name such as "
                             f"{what}{suffixes[0]}.")
    if not out.parent.is_dir():
        raise UserInputError(f"The folder {out.parent} does not exist.")
    if not os.access(out.parent, os.W_OK):
        raise UserInputError(f"Cannot write to {out.parent}: permission denied.")
    return out


@contextmanager
def atomic_file(out: Path, *, text: bool = True, encoding: str = "utf-8") -> Iterator:
    """Yield a file object for a temporary file beside ``out``; on success it becomes ``out``
    (with the mode a normally saved file gets), on any error it is removed."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    except OSError as exc:
        raise UserInputError(f"Cannot write to {out.parent}: {exc.strerror or exc}.") from exc
    try:
        mode = "w" if text else "wb"
        kwargs = {"encoding": encoding, "newline": ""} if text else {}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.chmod(tmp, _file_mode(out))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_folder_target(out: str | Path) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{out} is a file: give the name of a new folder.")
    if not out.parent.is_dir():
        raise UserInputError(f"The folder {out.parent} does not exist.")
    if not os.access(out.parent, os.W_OK):
        raise UserInputError(f"Cannot write to {out.parent}: permission denied.")
    if out.is_dir() and any(out.iterdir()) and not (out / FOLDER_MARKER).exists():
        raise UserInputError(f"The folder {out} is not empty and was not written by a trapgui "
                             "export: choose a new or empty folder (nothing was changed).")
    return out


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` (an empty folder
    or an earlier trapgui export there is removed only once the new one is complete)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    except OSError as exc:
        raise UserInputError(f"Cannot write to {out.parent}: {exc.strerror or exc}.") from exc
    try:
        yield tmp
        (tmp / FOLDER_MARKER).write_text("written by a trapgui export; trapgui may replace "
                                         "this folder when exporting to it again\n")
        mode = 0o777 & ~_umask()
        os.chmod(tmp, mode)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    try:  # Linux: read the umask without changing it (os.umask would race other threads)
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return 0o022


_FORMULA_FIRST = frozenset(_FORMULA_START)  # escape_cell's test, as a set of first characters


class Plain(str):
    """A cell written as is: a formatted number ("-73.2121" is a longitude, not a formula)."""


class CsvWriter:
    """csv.writer (RFC 4180: CRLF, quotes doubled) whose text cells are formula-escaped."""

    def __init__(self, fh):
        self._writer = csv.writer(fh)

    def header(self, columns) -> None:
        self._writer.writerow(columns)

    def row(self, cells) -> None:
        # the hot loop of every export: cheapest tests first (most cells are empty)
        out = []
        for c in cells:
            if c is None:
                out.append("")
            elif type(c) is str:
                out.append("'" + c if c and c[0] in _FORMULA_FIRST else c)
            elif isinstance(c, str):  # Plain: a formatted number
                out.append(c)
            else:
                out.append(_plain(c))
        self._writer.writerow(out)

    def raw_row(self, cells) -> None:
        """Cells already formatted and escaped."""
        self._writer.writerow(cells)


def _plain(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value, 6)
    return str(value)


def number(value: float | None, digits: int) -> Plain:
    """Shortest plain decimal rounded to ``digits`` (no exponent, no "-0"); "" for None."""
    return Plain(_num(value, digits))
