"""The single version number of trapgui.

It is read from the installed package metadata (which comes from ``pyproject.toml``) and, when
running from a source checkout or a frozen bundle without metadata, parsed from ``pyproject.toml``
or the bundled copy, so installers, the About box and export provenance all agree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _read_version() -> str:
    candidates = [Path(__file__).resolve().parent.parent / "pyproject.toml"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "pyproject.toml")
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        if match:
            return match.group(1)
    try:
        from importlib.metadata import version

        return version("trapgui")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        return "0+unknown"


__version__ = _read_version()
