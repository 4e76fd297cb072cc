"""Where bundled files (icon, smoke-test image) are, from a checkout or a frozen build."""

from __future__ import annotations

import sys
from pathlib import Path


def resource_path(name: str) -> Path:
    # PyInstaller unpacks data files under sys._MEIPASS; a checkout has them beside the package
    base = getattr(sys, "_MEIPASS", None)
    candidates = [Path(base) / "resources"] if base else []
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    for folder in candidates:
        if (folder / name).exists():
            return folder / name
    return candidates[-1] / name


def app_icon():
    from PySide6.QtGui import QIcon

    icon = QIcon()
    for name in ("trapgui.svg", "trapgui.png"):
        path = resource_path(name)
        if path.exists():
            icon.addFile(str(path))
    return icon
