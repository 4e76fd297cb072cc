"""File names as catalogue text, and back to the exact name on disk.

A file name is bytes on Linux and macOS, and UTF-16 units on Windows, not necessarily text:
a card written by a camera with another locale, or a file copied from an old system, can carry
bytes that are not valid UTF-8. Python hands such names over with lone surrogates
(``surrogateescape``: byte 0xE9 becomes U+DCE9), which SQLite cannot store as text, so one such
name used to make the whole write of its folder fail.

``to_stored`` turns any name or path into storable text, and ``from_stored`` gives back the
exact name Python needs to open the file (``os.fsencode`` of it is the original bytes):

- a name that is valid text and contains nothing that looks like an escape is stored as it is
  (so every catalogue written before this module keeps its rows, and Windows paths with their
  backslashes stay readable);
- otherwise every backslash is doubled and each undecodable byte becomes ``\\xNN`` (each lone
  UTF-16 surrogate from Windows ``\\uDNNN``), e.g. ``café.jpg`` written in Latin-1 is stored as
  ``caf\\xe9.jpg``.

``from_stored`` undoes the escaping exactly when the text contains one of those escapes, which
the rule above guarantees for every escaped value and excludes for every verbatim one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# What an escaped value always contains, and a verbatim value never: a doubled backslash, a
# byte escape (0x80-0xFF: surrogateescape never makes others) or a surrogate escape.
_ESCAPE = re.compile(r"\\\\|\\x[89a-f][0-9a-f]|\\ud[89a-f][0-9a-f]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TOKEN = re.compile(r"\\(\\|x[89a-f][0-9a-f]|ud[89a-f][0-9a-f]{2})")


def to_stored(name: str) -> str:
    """Storable text (valid Unicode) for a file name or path as Python's ``os`` returns it."""
    if not _SURROGATE.search(name) and not _ESCAPE.search(name):
        return name
    out = name.replace("\\", "\\\\")
    return _SURROGATE.sub(_escape_surrogate, out)


def _escape_surrogate(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # one undecodable byte (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"  # an unpaired UTF-16 surrogate (Windows)


def from_stored(text: str) -> str:
    """The name as Python's ``os`` functions take it (``os.fsencode`` gives the disk bytes)."""
    if not _ESCAPE.search(text):
        return text
    return _TOKEN.sub(_unescape_token, text)


def _unescape_token(match: re.Match) -> str:
    token = match.group(1)
    if token == "\\":
        return "\\"
    if token[0] == "x":
        return chr(0xDC00 + int(token[1:], 16))
    return chr(int(token[1:], 16))


def disk_path(folder: str, rel_path: str) -> str:
    """The absolute path to open for a catalogued image: deployment path + relative path, both
    as stored (``rel_path`` has POSIX separators)."""
    return os.fspath(Path(from_stored(folder)) / from_stored(rel_path))
