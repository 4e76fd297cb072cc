"""Text from files and folders, made safe to print on a terminal.

A file name can contain anything but ``/`` and NUL: an ESC sequence that clears the screen,
retitles the window or fakes a line of output, a carriage return that overwrites the line, a
right-to-left override that shows ``gpj.exe`` as ``exe.jpg``. Everything the CLI prints that
came from the disk goes through :func:`printable`, which shows such characters as visible escapes
(``\\x1b``, ``\\u202e``) and leaves every other character, accents and CJK included, alone.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, lone surrogates (undecodable bytes of a file name), the line and
# paragraph separators, and the bidirectional embedding / override / isolate marks.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029"
                     "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029"
                                "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or direction-changing character shown as an escape.
    ``keep_newlines`` keeps ``\\n`` (for multi-line messages whose lines are ours)."""
    pattern = _UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, str(text))
