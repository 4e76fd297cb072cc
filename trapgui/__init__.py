"""trapgui: find and identify insects in automated moth light-trap images."""

from trapgui.version import __version__

__all__ = ["__version__"]
