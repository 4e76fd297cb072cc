"""Text that is safe to print on a terminal: file names may hold escape sequences."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes, newlines) and undecodable bytes of
    file names shown as escapes (``\\x1b``), everything else as it is."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs") or code in (0x2028, 0x2029):
            out.append(ch.encode("unicode_escape").decode("ascii") if code < 0x10000
                       else repr(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)
