"""The PySide6 desktop app. Talks to the rest only through ``trapgui.services``."""

# PySide6 6.12.0 on Python 3.11 drops a reference to True/None on every signal emit (see the
# module): without this the interpreter aborts after a few thousand emits.
from trapgui.gui.pyside_refcount_fix import apply as _fix_pyside_refcounts  # noqa: E402

_fix_pyside_refcounts()
