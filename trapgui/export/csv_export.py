"""CSV export of detections: one row per detection, streamed, columns in docs/csv-columns.md.

Rows are read from SQLite in partitions and written as they come, so memory stays flat however
many detections there are. Classifications are fetched per partition (one query), best label
per rank. The file is written under a temporary name and renamed at the end: a cancelled or
failed export never leaves a half file under the chosen name.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from trapgui.core.errors import Cancelled, UserInputError
from trapgui.core.local_time import CameraClock, iso, localize
from trapgui.core.types import Rank
from trapgui.db import final_labels
from trapgui.db.database import Database
from trapgui.db.tables import (
    Classification,
    Deployment,
    Detection,
    Image,
    Night,
    Occurrence,
    PipelineConfig,
    ProcessingRun,
)

RANKS = (Rank.BINARY, Rank.ORDER, Rank.SPECIES)
COLUMNS = [
    "trap", "trap_folder", "night", "image", "capture_time", "time_source",
    "image_width", "image_height", "detection_id",
    "x1", "y1", "x2", "y2", "x1_rel", "y1_rel", "x2_rel", "y2_rel",
    "detection_score", "detector_model",
    *[f"{r.value}_{c}" for r in RANKS for c in ("label", "score", "model")],
    "label", "label_score", "label_rank",
    "pipeline", "run_id",
    "occurrence_id", "fixture",
    "classification_method", "identified_by", "machine_label", "machine_score",
]
PARTITION = 2000
# A spreadsheet runs a cell starting with these as a formula ("CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportFilter:
    nights: Sequence[dt.date] | None = None  # evening dates; None = all (undated included)
    night_ids: Sequence[int] | None = None  # exact nights (the GUI's selection); None = all
    deployment_ids: Sequence[int] | None = None
    pipeline_id: int | None = None
    min_detection_score: float | None = None
    min_classification_score: float | None = None  # on the final label (deepest rank)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    rows: int


def escape_cell(value: str) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _num(value: float | None, digits: int) -> str:
    """Shortest plain decimal for ``value`` rounded to ``digits`` (no exponent, no "-0")."""
    if value is None:
        return ""
    out = repr(round(value, digits) + 0.0)  # + 0.0 turns -0.0 into 0.0
    if "e" in out:  # repr switches to exponents below 1e-4
        out = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    elif out.endswith(".0"):
        out = out[:-2]
    return "0" if out in ("-0", "") else out


def _iso(when: dt.datetime | None, offset_min: int | None) -> str:
    if when is None:
        return ""
    if offset_min is not None:
        when = when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_min)))
    return when.isoformat(timespec="seconds")


def _capture_time(captured_at, offset, clock_offset, clock_zone) -> str:
    """ISO 8601 with the trap's camera clock (or the file's own offset); local without."""
    if captured_at is None:
        return ""
    exact = localize(captured_at, offset, CameraClock(clock_offset, clock_zone))
    return iso(exact) if exact is not None else _iso(captured_at, None)


def _query(flt: ExportFilter):
    q = (select(Detection.id, Detection.x1, Detection.y1, Detection.x2, Detection.y2,
                Detection.score, Detection.detector, Detection.pipeline_id, Detection.run_id,
                Detection.top_label, Detection.top_score, Detection.top_rank,
                Image.rel_path, Image.width, Image.height, Image.captured_at,
                Image.utc_offset_min, Image.time_source, Night.date, Deployment.name,
                Deployment.path, Detection.occurrence_id, Occurrence.fixture,
                Deployment.clock_utc_offset_min, Deployment.clock_time_zone,
                *final_labels.detection_columns())
         .join(Image, Image.id == Detection.image_id)
         .join(Deployment, Deployment.id == Image.deployment_id)
         .outerjoin(Night, Night.id == Image.night_id)
         .outerjoin(Occurrence, Occurrence.id == Detection.occurrence_id)
         .outerjoin(final_labels.review_occurrence(), final_labels.review_join()))
    if flt.nights is not None:
        q = q.where(Night.date.in_(list(flt.nights)))
    if flt.night_ids is not None:
        q = q.where(Image.night_id.in_(list(flt.night_ids)))
    if flt.deployment_ids is not None:
        q = q.where(Image.deployment_id.in_(list(flt.deployment_ids)))
    if flt.pipeline_id is not None:
        q = q.where(Detection.pipeline_id == flt.pipeline_id)
    if flt.min_detection_score is not None:
        q = q.where(Detection.score >= flt.min_detection_score)
    if flt.min_classification_score is not None:
        q = q.where(final_labels.detection_label_at_least(flt.min_classification_score))
    return q


def count_detections(db: Database, flt: ExportFilter = ExportFilter()) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(_query(flt).subquery())).scalar_one()


def pipelines_of(db: Database, flt: ExportFilter = ExportFilter()) -> list[str]:
    """Names of the model configurations whose detections ``flt`` selects. More than one: an
    image processed with each of them is in the export once per configuration."""
    sub = _query(flt).subquery()
    with db.session() as s:
        return list(s.scalars(select(PipelineConfig.name).where(
            PipelineConfig.id.in_(select(sub.c.pipeline_id).distinct()))
            .order_by(PipelineConfig.id)))


def images_in_several_pipelines(db: Database, flt: ExportFilter = ExportFilter()) -> int:
    """How many selected images have detections from more than one model configuration."""
    sub = _query(flt).subquery()
    several = (select(sub.c.path, sub.c.rel_path).group_by(sub.c.path, sub.c.rel_path)
               .having(func.count(sub.c.pipeline_id.distinct()) > 1))
    with db.session() as s:
        return s.execute(select(func.count()).select_from(several.subquery())).scalar_one()


def pipeline_id_by_name(db: Database, name: str) -> int:
    with db.session() as s:
        rows = dict(s.execute(select(PipelineConfig.name, PipelineConfig.id)).all())
    if name not in rows:
        known = "; ".join(sorted(rows)) or "none yet"
        raise UserInputError(f"No model configuration is called {name!r}.",
                             hint=f"Known configurations (the `pipeline` column): {known}.")
    return rows[name]


class _ModelNames:
    """'name version' for a model key as recorded by the run that produced a detection."""

    def __init__(self, session):
        self.runs = dict(session.execute(select(ProcessingRun.id, ProcessingRun.models)).all())
        self.pipelines = dict(session.execute(select(PipelineConfig.id, PipelineConfig.name)).all())

    def describe(self, run_id: int | None, key: str | None) -> str:
        if not key:
            return ""
        info = (self.runs.get(run_id) or {}).get(key)
        if not isinstance(info, dict):
            return key
        name = str(info.get("name") or key)
        version = info.get("version")
        return f"{name} {version}" if version else name


def export_detections(db: Database, out: str | Path, flt: ExportFilter = ExportFilter(), *,
                      excel_bom: bool = False,
                      progress: Callable[[int, int], None] | None = None,
                      cancel=None) -> ExportReport:
    """Write the detections matching ``flt`` to ``out``; returns how many rows were written.

    ``progress(rows_written, rows_total)`` is called every partition; ``cancel`` (a callable or
    an Event) stops the export, removes the partial file and raises Cancelled.
    """
    out = Path(out).expanduser()
    if out.is_dir():
        raise UserInputError(f"{out} is a folder: give a file name such as detections.csv.")
    if not out.parent.is_dir():
        raise UserInputError(f"The folder {out.parent} does not exist.")
    is_cancelled = (cancel.is_set if hasattr(cancel, "is_set") else cancel) or (lambda: False)
    total = count_detections(db, flt) if progress else 0
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    except OSError as exc:
        raise UserInputError(f"Cannot write to {out.parent}: {exc.strerror or exc}.") from exc
    written = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig" if excel_bom else "utf-8",
                       newline="") as fh, db.session() as s:
            writer = csv.writer(fh)  # RFC 4180: CRLF line ends, quotes doubled
            writer.writerow(COLUMNS)
            names = _ModelNames(s)
            resolver = final_labels.LabelResolver(s)
            result = s.execute(_query(flt).order_by(
                Deployment.name, Deployment.id, Night.date.is_(None), Night.date,
                Image.captured_at, Image.rel_path, Detection.id
            ).execution_options(yield_per=PARTITION))
            for part in result.partitions():
                if is_cancelled():
                    raise Cancelled("The export was cancelled; no file was written.")
                best = _best_classifications(s, [r[0] for r in part])
                writer.writerows(_row(r, best.get(r[0], {}), names, resolver) for r in part)
                written += len(part)
                if progress:
                    progress(written, max(total, written))
        # mkstemp makes the file private (0600): give it the mode a file saved normally gets
        os.chmod(tmp, _file_mode(out))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportReport(out, written)


def _file_mode(out: Path) -> int:
    """The replaced file's own mode, else what the umask gives a new file (0644 usually)."""
    try:
        return stat.S_IMODE(out.stat().st_mode)
    except OSError:
        pass
    try:  # Linux: read the umask without changing it (os.umask would race other threads)
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = 0o022
    return 0o666 & ~umask


def _best_classifications(session, detection_ids: list[int]) -> dict[int, dict[str, tuple]]:
    best: dict[int, dict[str, tuple]] = {}
    rows = session.execute(select(Classification.detection_id, Classification.rank,
                                  Classification.label, Classification.score,
                                  Classification.model)
                           .where(Classification.detection_id.in_(detection_ids)))
    for det_id, rank, label, score, model in rows:
        per_rank = best.setdefault(det_id, {})
        if rank not in per_rank or score > per_rank[rank][1]:
            per_rank[rank] = (label, score, model)
    return best


def _row(r, classes: dict[str, tuple], names: _ModelNames,
         resolver: final_labels.LabelResolver) -> list[str]:
    (det_id, x1, y1, x2, y2, score, detector, pipeline_id, run_id, _top_label, _top_score,
     _top_rank, rel_path, width, height, captured_at, offset, time_source, night, trap,
     trap_path, occurrence_id, fixture, clock_offset, clock_zone) = r[:25]
    final = resolver.resolve(r)
    if width and height:
        rel = [_num(x1 / width, 6), _num(y1 / height, 6), _num(x2 / width, 6), _num(y2 / height, 6)]
    else:
        rel = ["", "", "", ""]
    cells = [escape_cell(trap), escape_cell(trap_path), night.isoformat() if night else "",
             escape_cell(rel_path), _capture_time(captured_at, offset, clock_offset, clock_zone),
             time_source or "",
             str(width or ""), str(height or ""), str(det_id),
             _num(x1, 2), _num(y1, 2), _num(x2, 2), _num(y2, 2), *rel,
             _num(score, 6), escape_cell(names.describe(run_id, detector))]
    for rank in RANKS:
        label, cscore, model = classes.get(rank.value, (None, None, None))
        cells += [escape_cell(label or ""), _num(cscore, 6),
                  escape_cell(names.describe(run_id, model))]
    cells += [escape_cell(final.label or ""), _num(final.score, 6), final.rank or "",
              escape_cell(names.pipelines.get(pipeline_id, "")), str(run_id or ""),
              str(occurrence_id or ""), "true" if fixture else "false",
              # human without a label: a reviewer rejected it as not an insect
              final.method if final.label or final.method == "human" else "",
              escape_cell(final.identified_by or ""),
              escape_cell(final.machine_label or ""), _num(final.machine_score, 6)]
    return cells
