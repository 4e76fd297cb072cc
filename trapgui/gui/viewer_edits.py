"""The image viewer's corrections: a false box deleted, a missed insect's box drawn, undo.

They are the Review tab's actions (``services.review.delete_box`` / ``add_box`` / ``undo``:
one transaction and one step of the review log each), saved on the job runner one at a time
in the order given, so an undo never overtakes the action it undoes. Nothing here touches the
database on the GUI thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from trapgui.gui.job_runner import job_runner


class ViewerEdits(QObject):
    applied = Signal(object)  # the ReviewOutcome, once saved
    failed = Signal(object)  # the exception (its str is the sentence for the user)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._queue: deque[Callable] = deque()
        self._acting = False

    def busy(self) -> bool:
        return self._acting or bool(self._queue)

    def delete_box(self, detection_id: int) -> None:
        self._push(lambda review: review.delete_box(detection_id))

    def add_box(self, image_id: int, box: tuple[float, float, float, float]) -> None:
        """A person's box on the image, in file pixels, for the model configuration that
        processed the image's night (the one the Review tab shows)."""
        self._push(lambda review: review.add_box(image_id, review.image_pipeline(image_id), box))

    def undo(self, night_id: int) -> None:
        self._push(lambda review: review.undo(night_id))

    def _push(self, fn: Callable) -> None:
        self._queue.append(fn)
        self._next()

    def _next(self) -> None:
        if self._acting or not self._queue:
            return
        self._acting = True
        fn, services = self._queue.popleft(), self._services
        # services.review is touched on the runner's thread only (its first use imports
        # SQLAlchemy)
        job_runner().call(lambda: fn(services.review), self._done, self._failed, context=self,
                          name="viewer: correct boxes")

    def _done(self, outcome) -> None:
        self._acting = False
        self.applied.emit(outcome)
        self._next()

    def _failed(self, exc: BaseException) -> None:
        self._acting = False
        self._queue.clear()  # what followed was meant after it: do not apply it blindly
        self.failed.emit(exc)
