"""THE place that decides the final label of an occurrence or a detection.

Every export (and the counting query in ``db.counts``) reads labels through this module, so a
count, a Camtrap DP observation and a Darwin Core record agree on what an individual is. Today
labels are the machine's: an occurrence's score-weighted vote (``occurrences.label``), a
detection's deepest-rank label (``detections.top_label``). A person's review
(``db.review_store``) overrides both: a confirmed or relabelled occurrence's final label is the
reviewer's (method "human", at every threshold), and its detections carry it too; a rejected
one ("not an insect") is counted nowhere (:func:`counted_occurrence`); where its rows are
listed at all (the detections CSV lists every detection) they have no label, method "human".
The machine's label and score always travel beside it.

Two halves, because exports stream hundreds of thousands of rows:
- SQL column expressions, added to the export's own select (no query per row);
- :class:`LabelResolver`, which turns those columns of one row into a :class:`FinalLabel`
  (model names and versions come from the processing runs, loaded once).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import case, literal, null, or_, select
from sqlalchemy.orm import aliased

from trapgui.db.tables import Detection, Occurrence, PipelineConfig, ProcessingRun

MACHINE = "machine"
HUMAN = "human"
# review states whose label is the person's (db.review_store)
_LABELLED = ("confirmed", "relabelled")
_REJECTED = "rejected"


class FinalLabel(NamedTuple):
    """(A named tuple: exports make one per row, 100,000s of them.)"""

    label: str | None  # None: no classifier said anything
    rank: str | None  # binary | order | species (machine) or the reviewer's rank
    score: float | None  # None for a human label
    method: str  # "machine" | "human"
    identified_by: str | None  # a model's name and version, or a reviewer's name
    identified_at: dt.datetime | None  # UTC, naive
    machine_label: str | None  # the machine's label, kept beside a human one
    machine_rank: str | None
    machine_score: float | None

    def accepted(self, min_label_score: float) -> bool:
        """Whether the label counts at this classification threshold (a person's always
        does; a machine label must score at least the threshold)."""
        if self.label is None:
            return False
        if self.method == HUMAN:
            return True
        return self.score is not None and self.score >= min_label_score


# ---- SQL halves -------------------------------------------------------------------------------
def _human(occ=Occurrence):
    return occ.review_state.in_(_LABELLED)


def _decided(occ=Occurrence):
    """A person decided (a label, or "not an insect": no label, by a person)."""
    return occ.review_state.in_((*_LABELLED, _REJECTED))


def counted_occurrence(occ=Occurrence):
    """WHERE clause: the occurrence is an insect to count (a person did not reject it)."""
    return or_(occ.review_state.is_(None), occ.review_state != _REJECTED)


def reviewed_occurrence(occ=Occurrence):
    """A person confirmed or relabelled it: it counts whatever the detection threshold."""
    return _human(occ)


def occurrence_columns() -> list:
    """Columns to add to a select over ``occurrences`` (it must include the table)."""
    human, decided = _human(), _decided()
    return [case((human, Occurrence.review_label), (decided, None),
                 else_=Occurrence.label).label("fl_label"),
            case((human, Occurrence.review_rank), (decided, None),
                 else_=Occurrence.label_rank).label("fl_rank"),
            Occurrence.label_score.label("fl_score"),
            case((decided, literal(HUMAN)), else_=literal(MACHINE)).label("fl_method"),
            case((decided, Occurrence.identified_by), else_=None).label("fl_by"),
            case((decided, Occurrence.identified_at), else_=None).label("fl_at"),
            Occurrence.updated_at.label("fl_machine_at"),
            Occurrence.pipeline_id.label("fl_pipeline"), null().label("fl_run"),
            Occurrence.label.label("fl_machine_label"),
            Occurrence.label_rank.label("fl_machine_rank"),
            Occurrence.label_score.label("fl_machine_score")]


def detection_columns() -> list:
    """Columns to add to a select over ``detections`` that outer-joins its occurrence as
    ``review_occurrence()`` (a reviewed occurrence's label is its detections' label)."""
    occ = review_occurrence()
    human, decided = _human(occ), _decided(occ)
    return [case((human, occ.review_label), (decided, None), else_=Detection.top_label).label("fl_label"),
            case((human, occ.review_rank), (decided, None), else_=Detection.top_rank).label("fl_rank"),
            Detection.top_score.label("fl_score"),
            case((decided, literal(HUMAN)), else_=literal(MACHINE)).label("fl_method"),
            case((decided, occ.identified_by), else_=None).label("fl_by"),
            case((decided, occ.identified_at), else_=None).label("fl_at"),
            Detection.pipeline_id.label("fl_pipeline"), Detection.run_id.label("fl_run"),
            Detection.top_label.label("fl_machine_label"),
            Detection.top_rank.label("fl_machine_rank"),
            Detection.top_score.label("fl_machine_score")]


_REVIEW_OCC = aliased(Occurrence, name="review_occ")


def review_occurrence():
    """The occurrence table under the name :func:`detection_columns` reads; a detection
    select adds ``.outerjoin(review_occurrence(), review_join())``."""
    return _REVIEW_OCC


def review_join():
    return _REVIEW_OCC.id == Detection.occurrence_id


def accepted_label(min_label_score: float):
    """(label, rank, method) SQL expressions of an occurrence at a classification threshold:
    a person's label always, the machine's when it counts, else NULL (an individual nobody
    identified)."""
    human = _human()
    ok = Occurrence.label_score >= min_label_score
    return (case((human, Occurrence.review_label), (ok, Occurrence.label), else_=None),
            case((human, Occurrence.review_rank), (ok, Occurrence.label_rank), else_=None),
            case((human, literal(HUMAN)), else_=literal(MACHINE)))


def detection_label_at_least(min_label_score: float):
    """WHERE clause: the detection's final label counts at this classification threshold
    (needs the ``review_occurrence()`` join)."""
    return or_(Detection.top_score >= min_label_score, _human(_REVIEW_OCC))


# ---- Python half ------------------------------------------------------------------------------
class LabelResolver:
    """Model names for machine labels, loaded once per export (a handful of rows)."""

    def __init__(self, session):
        self.pipelines = {r.id: (r.name, r.config or {}) for r in session.execute(
            select(PipelineConfig.id, PipelineConfig.name, PipelineConfig.config))}
        self.runs = {r.id: r for r in session.execute(
            select(ProcessingRun.id, ProcessingRun.pipeline_id, ProcessingRun.models,
                   ProcessingRun.started_at, ProcessingRun.ended_at)
            .order_by(ProcessingRun.id))}
        self._latest: dict[int, object] = {}
        for run in self.runs.values():  # ordered by id: the last one wins
            self._latest[run.pipeline_id] = run
        self._by: dict[tuple, str | None] = {}  # (pipeline, rank, run) -> model name

    def model_key(self, pipeline_id: int | None, rank: str | None) -> str | None:
        config = self.pipelines.get(pipeline_id, (None, {}))[1]
        return config.get(rank) if rank else None

    def describe_model(self, key: str | None, run_id: int | None = None,
                       pipeline_id: int | None = None) -> str:
        """'name version' of model ``key`` as the run (else the pipeline's latest run)
        recorded it; the key itself when no run recorded it."""
        if not key:
            return ""
        run = self.runs.get(run_id) or self._latest.get(pipeline_id)
        info = (getattr(run, "models", None) or {}).get(key)
        if not isinstance(info, dict):
            return key
        name = str(info.get("name") or key)
        version = info.get("version")
        return f"{name} {version}" if version else name

    def run_time(self, run_id: int | None, pipeline_id: int | None) -> dt.datetime | None:
        run = self.runs.get(run_id) or self._latest.get(pipeline_id)
        if run is None:
            return None
        return run.ended_at or run.started_at

    def resolve(self, row) -> FinalLabel:
        """The final label from a row holding the ``fl_*`` columns above."""
        label, rank, score = row.fl_label, row.fl_rank, row.fl_score
        method = row.fl_method or MACHINE
        if method == HUMAN:
            return FinalLabel(label, rank, None, HUMAN, row.fl_by, _utc(row.fl_at),
                              getattr(row, "fl_machine_label", None),
                              getattr(row, "fl_machine_rank", None),
                              getattr(row, "fl_machine_score", None))
        by = None
        if label is not None:
            key = (row.fl_pipeline, rank, row.fl_run)
            by = self._by.get(key)
            if by is None:
                by = self._by[key] = self.describe_model(
                    self.model_key(row.fl_pipeline, rank), row.fl_run, row.fl_pipeline)
        machine_at = getattr(row, "fl_machine_at", None)
        when = _utc(machine_at) if machine_at else self.run_time(row.fl_run, row.fl_pipeline)
        return FinalLabel(label, rank, score, MACHINE, by or None,
                          when if label is not None else None, label, rank, score)


def _utc(value) -> dt.datetime | None:
    if value is None or value == 0:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).replace(tzinfo=None)
    return value
