"""What flows through the engine: batches of work from a source, results into a sink.

The engine (``pipeline.device_pool.DevicePool``) does not know where images come from or where
results go. A **source** hands each device worker batches of images to process and keeps its
own bookkeeping (leases on the local queue, claimed remote tasks); a **sink** writes what the
device produced, on the one writer thread, in one transaction per batch. Sources today: the
local queue (``pipeline.queue_source``) and remote tasks (``remote.task_source``); a cluster
executor reuses the queue source and sink with workers on other machines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from trapgui.pipeline.processor import DecodedImage, ProcessedImage


@dataclass(slots=True)
class WorkItem:
    """One image to process. ``image_id`` is its catalogue id (results are stored under it);
    ``error`` set means it failed before processing (e.g. a download) and is recorded as a
    failed result with that reason, without going onto the device."""

    image_id: int
    name: str  # what the user recognises: a path, "task 17 (image 42)"
    pipeline: str = ""  # which processor: the key of the run's pipeline specs
    error: str | None = None
    ref: Any = None  # the source's own handle (a queue claim, a remote task)


@dataclass
class WorkBatch:
    """Items for one device step. Decoding may still be running (``_decoded`` futures, one per
    item, in item order) or be done already (remote downloads decode on their own threads)."""

    worker: str  # the device worker it was handed to (queue claims are made in its name)
    items: list[WorkItem]
    _decoded: list[Future | DecodedImage | None] = field(default_factory=list)
    device_seconds: float = 0.0  # time the device step took (set by the device worker)

    def images(self) -> list[DecodedImage]:
        """The decoded images, in item order (blocks until their decoding has finished)."""
        out = []
        for item, d in zip(self.items, self._decoded or [None] * len(self.items)):
            image = d.result() if isinstance(d, Future) else d
            if image is None:
                image = DecodedImage(item.image_id, item.name, None, (0, 0),
                                     error=item.error or "The image was not decoded.")
            out.append(image)
        return out

    def cancel(self) -> None:
        for d in self._decoded:
            if isinstance(d, Future):
                d.cancel()

    @property
    def image_ids(self) -> list[int]:
        return [i.image_id for i in self.items]


class WorkSource(Protocol):
    """Hands out work. Every method is called from engine threads; it must be thread-safe."""

    def start(self, decoder: Callable[..., DecodedImage], control: Any) -> None:
        """The models are loaded: decode with ``decoder(image_id, path, expected_size)``.
        ``control`` is the run's JobControl: after a cancel the source decides what is still
        handed out (nothing for the local queue; the claimed tasks for remote jobs)."""

    def next_batch(self, worker: str, size: int, wait_s: float) -> WorkBatch | None:
        """The next batch for ``worker`` (at most ``size`` images), waiting up to ``wait_s``
        for one. ``None``: there will be no more work for this worker (drained, cancelled).
        An empty batch: nothing yet, ask again (the engine checks pause and cancel between)."""

    def on_device(self, batch: WorkBatch, flying: bool) -> None:
        """The batch goes onto the device (``flying``) or comes off it: while it is there, a
        crash of the process may be its fault."""

    def give_back(self, worker: str) -> None:
        """``worker`` stops: what it holds and has not started goes back (nothing is lost)."""

    def keep_alive(self) -> None:
        """Called about every second from the engine's supervisor (lease renewal, polling)."""

    def status(self) -> dict[str, Any]:
        """Fields for the run's progress: ``total`` (None if unknown), ``done_before`` and
        ``failed_before`` (of the total, finished before this run), ``state`` and any of
        ``posted``, ``waiting_to_post``, ``resent``, ``offline_since``, ``message``."""

    def close(self) -> None:
        """The run is over (workers and writer have stopped): release threads and pools."""


class ResultSink(Protocol):
    """Writes results. ``write`` runs on the engine's writer thread only."""

    wants_scores: bool  # full score vectors and logits per detection (remote results need them)

    def begin(self, model_sets: dict[str, Any], devices: list) -> None:
        """The models are loaded (one ``ModelSet`` per pipeline key): record the run."""

    def write(self, batch: WorkBatch, results: Sequence[ProcessedImage]) -> int:
        """Store the batch's results in one transaction; returns how many items were
        written (fewer when another worker took some over meanwhile)."""

    def abandon(self, batch: WorkBatch) -> None:
        """The batch could not be written: its work goes back to be done again."""


ModelLoader = Callable[[str, Any], Any]  # (pipeline key, torch.device) -> ModelSet
