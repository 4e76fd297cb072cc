"""Where trapgui keeps its files, and the user's settings. Pure Python."""

from trapgui.config.paths import AppPaths, default_paths
from trapgui.config.settings import Settings, load_settings, save_settings

__all__ = ["AppPaths", "default_paths", "Settings", "load_settings", "save_settings"]
