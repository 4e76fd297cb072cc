"""Occurrences CSV: one row per individual (an insect tracked across a night's images).

Trap, night, occurrence id, the final label (with method, identifier and the machine's label),
the best detection's label per rank, first and last seen, detections, the best crop's image and
box, and the fixture flag. Every occurrence is written (fixtures too, flagged) unless a
threshold is given. Columns: docs/csv-columns.md.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from trapgui.core.local_time import iso
from trapgui.db import export_queries as q
from trapgui.db.final_labels import LabelResolver
from trapgui.db.tables import Classification
from trapgui.export.about import build_about, sidecar_path, write_about
from trapgui.export.atomic import CsvWriter, atomic_file, check_file_target, number
from trapgui.export.common import ExportResult, ExportRun

RANKS = ("binary", "order", "species")
COLUMNS = [
    "trap", "trap_folder", "night", "occurrence_id",
    "label", "label_rank", "label_score", "classification_method", "identified_by",
    "machine_label", "machine_rank", "machine_score",
    *[f"{rank}_{c}" for rank in RANKS for c in ("label", "score")],
    "first_seen", "last_seen", "detections", "best_detection_id", "best_detection_score",
    "best_image", "best_x1", "best_y1", "best_x2", "best_y2",
    "fixture", "fixture_reason", "pinned", "pipeline",
]


def export_occurrences(run: ExportRun, out: str | Path, *,
                       min_detection_score: float | None = None,
                       min_label_score: float | None = None,
                       include_fixtures: bool = True, excel_bom: bool = False) -> ExportResult:
    out = check_file_target(out, (".csv",), "occurrences")
    run.require_results()
    total = q.count_rows(run.db, q.occurrence_select(run.scope, run.pipeline_id,
                                                     min_detection_score,
                                                     include_fixtures=include_fixtures))
    rows = 0
    with atomic_file(out, encoding="utf-8-sig" if excel_bom else "utf-8") as fh, \
            run.db.session() as s:
        w = CsvWriter(fh)
        w.header(COLUMNS)
        resolver = LabelResolver(s)
        pipeline = resolver.pipelines.get(run.pipeline_id, ("", {}))[0]
        result = q.occurrence_rows(s, run.scope, run.pipeline_id, min_detection_score,
                                   include_fixtures=include_fixtures)
        for part in result.partitions():
            per_rank = _best_labels(s, [r.best_detection_id for r in part if r.best_detection_id])
            for r in part:
                label = resolver.resolve(r)
                if min_label_score is not None and not label.accepted(min_label_score):
                    continue
                trap = run.traps[r.deployment_id]
                ranks = per_rank.get(r.best_detection_id, {})
                first = run.exact_time(r.deployment_id, r.first_seen, None) or r.first_seen
                last = run.exact_time(r.deployment_id, r.last_seen, None) or r.last_seen
                w.row([trap.name, trap.path, r.date.isoformat(), r.id,
                       label.label, label.rank, number(label.score, 6),
                       label.method if label.label else None, label.identified_by,
                       label.machine_label, label.machine_rank, number(label.machine_score, 6),
                       *[x for rank in RANKS for x in (ranks.get(rank, (None, None))[0],
                                                       number(ranks.get(rank, (None, None))[1], 6))],
                       _t(first), _t(last), r.detections or r.n_detections, r.best_detection_id,
                       number(r.best_detection_score, 6), r.best_rel_path, number(r.x1, 2),
                       number(r.y1, 2), number(r.x2, 2), number(r.y2, 2), bool(r.fixture),
                       r.fixture_reason, bool(r.pinned), pipeline])
                rows += 1
            run.progress(rows, total, "individuals", "Writing occurrences")
            run.check_cancel()
    about = build_about(run.db, "occurrences", run.scope, run.pipeline_id, run.thresholds,
                        counts_individuals=False)
    about["filters"] = {"min_detection_score": min_detection_score,
                        "min_label_score": min_label_score, "fixtures": include_fixtures}
    about["rows"] = {"occurrences": rows}
    about["notes"] = list(run.notes)
    return ExportResult("occurrences", out, {"occurrences": rows},
                        write_about(sidecar_path(out), about), tuple(run.notes))


def _t(when) -> str | None:
    if when is None:
        return None
    return iso(when) if when.tzinfo else when.isoformat(timespec="seconds")


def _best_labels(session, detection_ids: list[int]) -> dict[int, dict[str, tuple]]:
    """Per detection: the best label and score of each rank."""
    best: dict[int, dict[str, tuple]] = {}
    if not detection_ids:
        return best
    for det_id, rank, label, score in session.execute(
            select(Classification.detection_id, Classification.rank, Classification.label,
                   Classification.score).where(Classification.detection_id.in_(detection_ids))):
        per = best.setdefault(det_id, {})
        if rank not in per or score > per[rank][1]:
            per[rank] = (label, score)
    return best
