"""``run_in_background`` for a widget's own work: the reply is dropped when the widget has been
deleted meanwhile (closing a tab while a query or a decode is still running is normal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trapgui.gui.background import run_in_background


def run_for(widget, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None) -> None:
    run_in_background(fn, on_done, on_error, context=widget)
