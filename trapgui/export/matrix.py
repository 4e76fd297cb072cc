"""Individuals per taxon per night, zeros included, with each night's effort.

- ``matrix``: one row per trap-night (a sampling unit), one column per taxon (the community
  matrix R's vegan and friends expect), plus effort columns (images, processed, hours);
- ``summary``: the same numbers in long form, one row per trap-night and taxon, with
  detections and MaxN beside the individuals (issue 13's per-night summary).

Counts come from ``db.counts.count_individuals``: the numbers the app's views show at the same
thresholds. A night none of whose images was processed has empty taxon cells (not sampled is
not zero); a night processed in part says so in ``complete``. Columns: docs/csv-columns.md.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from trapgui.core.errors import UserInputError
from trapgui.db import counts as db_counts
from trapgui.export.about import build_about, sidecar_path, write_about
from trapgui.export.atomic import CsvWriter, atomic_file, check_file_target, number
from trapgui.export.common import ExportResult, ExportRun, trap_hours

NOT_IDENTIFIED = "(not identified)"
# the night's images as `trapgui nights` counts them: images = processed + failed +
# unreadable + waiting, deleted files apart (core.night_counts)
EFFORT_COLUMNS = ["trap", "trap_id", "night", "first_image", "last_image", "hours", "images",
                  "processed", "failed", "unreadable", "waiting", "missing", "complete"]
SUMMARY_COLUMNS = EFFORT_COLUMNS + ["taxon", "rank", "individuals", "detections", "max_n"]


def _taxon_names(counts) -> dict[tuple, str]:
    """(label, rank) -> column name; a label found at two ranks gets its rank appended."""
    totals: dict[tuple, int] = defaultdict(int)
    for c in counts:
        totals[(c.label, c.rank)] += c.individuals
    labels = defaultdict(set)
    for label, rank in totals:
        labels[label].add(rank)
    keys = sorted((k for k in totals if k[0] is not None), key=lambda k: (-totals[k], k[0]))
    names = {k: k[0] if len(labels[k[0]]) == 1 else f"{k[0]} [{k[1]}]" for k in keys}
    if any(k[0] is None for k in totals):
        names[(None, None)] = NOT_IDENTIFIED
    return names


def _prepare(run: ExportRun, what: str):
    run.require_results()
    efforts = db_counts.night_effort(run.db, run.scope, run.pipeline_id)
    if not efforts:
        raise UserInputError(f"Nothing to export: the selection has no dated nights for the "
                             f"{what}.")
    counts = db_counts.count_individuals(run.db, run.scope, run.pipeline_id, run.thresholds)
    run.warn_untracked()
    per_night: dict[int, dict[tuple, object]] = defaultdict(dict)
    for c in counts:
        per_night[c.night_id][(c.label, c.rank if c.label is not None else None)] = c
    return efforts, _taxon_names(counts), per_night


def _effort_cells(run: ExportRun, e) -> list:
    trap = run.traps[e.deployment_id]
    hours = trap_hours(run, e.deployment_id, e.start, e.end)
    first = run.exact_time(e.deployment_id, e.start, None) or e.start
    last = run.exact_time(e.deployment_id, e.end, None) or e.end
    return [trap.name, trap.id, e.date.isoformat(),
            first.isoformat(timespec="seconds") if first else None,
            last.isoformat(timespec="seconds") if last else None, number(hours, 3), e.images,
            e.processed, e.failed, e.unreadable, e.waiting, e.missing, e.fully_processed]


def export_matrix(run: ExportRun, out: str | Path) -> ExportResult:
    out = check_file_target(out, (".csv",), "matrix")
    efforts, names, per_night = _prepare(run, "species x night matrix")
    keys = list(names)
    with atomic_file(out) as fh:
        w = CsvWriter(fh)
        w.header(EFFORT_COLUMNS + ["individuals"] + [names[k] for k in keys])
        for e in efforts:
            got = per_night.get(e.night_id, {})
            if e.sampled:
                cells = [got[k].individuals if k in got else 0 for k in keys]
                total = sum(c.individuals for c in got.values())
            else:
                cells, total = [None] * len(keys), None
            w.row(_effort_cells(run, e) + [total] + cells)
    rows = {"nights": len(efforts), "taxa": len(keys)}
    return _finish(run, "matrix", out, rows)


def export_summary(run: ExportRun, out: str | Path) -> ExportResult:
    out = check_file_target(out, (".csv",), "summary")
    efforts, names, per_night = _prepare(run, "summary")
    rows = 0
    with atomic_file(out) as fh:
        w = CsvWriter(fh)
        w.header(SUMMARY_COLUMNS)
        for e in efforts:
            if not e.sampled:
                continue
            effort = _effort_cells(run, e)
            got = per_night.get(e.night_id, {})
            for key, name in names.items():
                c = got.get(key)
                w.row(effort + [name, key[1] or "", c.individuals if c else 0,
                                c.detections if c else 0, c.max_n if c else 0])
                rows += 1
    return _finish(run, "summary", out, {"rows": rows, "taxa": len(names)})


def _finish(run: ExportRun, fmt: str, out: Path, rows: dict) -> ExportResult:
    about = build_about(run.db, fmt, run.scope, run.pipeline_id, run.thresholds,
                        counts_individuals=True)
    about["rows"] = rows
    about["notes"] = list(run.notes)
    return ExportResult(fmt, out, rows, write_about(sidecar_path(out), about), tuple(run.notes))
