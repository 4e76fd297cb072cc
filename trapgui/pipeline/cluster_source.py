"""The local queue as the source of a cluster run, and the catalogue as its sink.

Like :class:`~trapgui.pipeline.queue_source.QueueSource` (claims with leases in one name,
renewed while held, released when not done), but nothing is decoded here: a claimed batch goes
to a Dask worker as (image id, path, size) and the worker reads the file from the storage it
shares with this computer. Claims are made one batch at a time as batches are submitted, so
what is claimed is exactly what is in flight (the pool bounds it). The sink is the
:class:`~trapgui.pipeline.queue_source.CatalogueSink` (``jobqueue.complete`` on the one writer
thread); only the run record differs: its models and devices are the workers'.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from trapgui.db import jobqueue
from trapgui.pipeline.queue_source import CatalogueSink, QueueSource
from trapgui.pipeline.work import WorkBatch, WorkItem
from trapgui.version import __version__


class ClusterSource(QueueSource):
    def __init__(self, db, pipeline_id: int, *, scope: Sequence[int] | None = None,
                 lease_s: float = 300.0):
        super().__init__(db, pipeline_id, scope=scope, loader_threads=1, lease_s=lease_s)

    def start(self, decoder, control) -> None:
        self._control = control  # no decode pool: the workers decode

    def claim(self, worker: str, size: int) -> WorkBatch | None:
        """Up to ``size`` images claimed in ``worker``'s name; None when nothing is left."""
        claims = jobqueue.claim(self.db, self.pipeline_id, worker, size, self.lease_s,
                                image_ids=self.scope)
        if not claims:
            return None
        with self._lock:
            self._held.setdefault(worker, {}).update((c.job_id, c.image_id) for c in claims)
        return WorkBatch(worker, [WorkItem(c.image_id, c.abs_path, ref=c) for c in claims])

    def next_batch(self, worker: str, size: int, wait_s: float) -> WorkBatch | None:
        if self._control.cancelled:
            return None
        return self.claim(worker, size)

    def on_device(self, batch: WorkBatch, flying: bool) -> None:
        """Nothing runs here: a crash of this process cannot be an image's fault."""

    def give_back(self, worker: str) -> None:
        """Every claim of ``worker`` not written yet goes back to pending (the run stops)."""
        with self._lock:
            job_ids = list(self._held.get(worker, {}))
        if job_ids:
            jobqueue.release(self.db, worker, job_ids)
            self.settled(worker, job_ids)

    def held(self) -> int:
        with self._lock:
            return sum(len(jobs) for jobs in self._held.values())

    def close(self) -> None:
        pass


class ClusterSink(CatalogueSink):
    """``CatalogueSink`` with the run record of a cluster run."""

    def begin_cluster(self, models: dict, workers: list, cluster: dict) -> None:
        """``models``: ``ModelSet.describe()`` as the first worker loaded them; ``workers``:
        the ``WorkerReport`` of each worker ready at the start; ``cluster``: address,
        dashboard, kind."""
        self.run_id = jobqueue.start_run(
            self.db, self.pipeline_id, models=models,
            devices=[{"device": f"dask:{w.address}", "name": f"{w.host}: {w.device_name}",
                      "threads": w.threads} for w in workers],
            settings={**self.spec.as_dict(), "cluster": cluster,
                      "process": {"host": socket.gethostname(), "pid": os.getpid()}},
            app_version=__version__)
