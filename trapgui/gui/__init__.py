"""The PySide6 desktop app. Talks to the rest only through ``trapgui.services``."""
