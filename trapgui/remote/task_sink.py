"""Results of remote tasks: into the local catalogue and the outbox, in ONE transaction.

So whatever happens (a kill, a server that refuses results, a restart with old claims still
leased), a result that will be posted is also in the catalogue, and the other way round: the
viewer and the exports always show what the server gets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from trapgui.db import jobqueue
from trapgui.pipeline.processor import ProcessedImage
from trapgui.pipeline.work import WorkBatch
from trapgui.remote.outbox import ComputedResult, Outbox
from trapgui.remote.pipelines import RemotePipeline, algorithm_refs
from trapgui.remote.schemas import error_result, pipeline_results_response
from trapgui.version import __version__

log = logging.getLogger(__name__)


class RemoteSink:
    wants_scores = True  # the contract posts every class's score and logit

    def __init__(self, db, outbox: Outbox, pipelines: Mapping[str, RemotePipeline], store, *,
                 worker_name: str, on_stored: Callable[[Sequence], None]):
        self.db = db
        self.outbox = outbox
        self.pipelines = dict(pipelines)
        self.store = store
        self.worker_name = worker_name
        self._on_stored = on_stored  # the source forgets these tasks; the poster wakes up
        self.pipeline_ids: dict[str, int] = {}
        self.run_ids: dict[str, int] = {}
        self.counts: dict[str, list[int]] = {}  # slug -> [done, failed]
        catalogue = store.model_catalogue if store is not None else None
        self._refs = {slug: algorithm_refs(p, catalogue) for slug, p in self.pipelines.items()}

    def begin(self, model_sets: dict, devices: list) -> None:
        for slug, pipe in self.pipelines.items():
            spec = pipe.spec()
            pid = jobqueue.get_or_create_pipeline(self.db, spec.key, spec.display_name,
                                                  spec.result_config())
            self.pipeline_ids[slug] = pid
            self.counts[slug] = [0, 0]
            self.run_ids[slug] = jobqueue.start_run(
                self.db, pid, models=model_sets[slug].describe(self.store),
                devices=[c.label for c in devices],
                settings={"remote": self.outbox.server, "slug": slug,
                          "worker": self.worker_name}, app_version=__version__)

    def end(self, status: str, notes: list[str]) -> None:
        for slug, run_id in self.run_ids.items():
            done, failed = self.counts[slug]
            jobqueue.finish_run(self.db, run_id, status=status, images_done=done,
                                images_failed=failed, notes=notes)

    def write(self, batch: WorkBatch, results: Sequence[ProcessedImage]) -> int:
        per_image = batch.device_seconds / max(1, len(batch.items))
        computed: list[ComputedResult] = []
        by_slug: dict[str, list] = {}
        for item, processed in zip(batch.items, results):
            claimed = item.ref
            r = processed.result
            if r.error is not None:
                body, error = error_result(r.error, claimed.task.image_id), r.error
            else:
                download_s = claimed.download.seconds if claimed.download else 0.0
                body = pipeline_results_response(
                    pipeline_slug=item.pipeline, source_image_id=claimed.task.image_id,
                    source_image_url=claimed.task.image_url, result=r,
                    scores=processed.scores, logits=processed.logits,
                    algorithms=self._refs[item.pipeline],
                    terminal_model=self.pipelines[item.pipeline].terminal,
                    total_time=per_image + download_s)
                error = None
            local = item.image_id if item.image_id >= 0 else None
            computed.append(ComputedResult(claimed.job_id, item.pipeline, claimed.task.id, body,
                                           error, local))
            if local is not None:
                by_slug.setdefault(item.pipeline, []).append(r)
        with self.db.write_session() as s:
            for slug, image_results in by_slug.items():
                jobqueue.record_results(s, self.pipeline_ids[slug], self.run_ids[slug],
                                        image_results)
            self.outbox.record_results(s, computed)
        for item, processed in zip(batch.items, results):
            self.counts[item.pipeline][1 if processed.result.error else 0] += 1
        self._on_stored(batch.items)
        return len(batch.items)

    def abandon(self, batch: WorkBatch) -> None:
        """The tasks stay claimed in the outbox and are processed at the next start (or the
        server gives them out again); this run stops waiting for them."""
        self._on_stored(batch.items)
