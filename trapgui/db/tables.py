"""Typed ORM models: the catalogue (deployments, nights, images), results, the queue and runs.

Times are stored two ways where it matters: ``captured_at`` is the camera's local wall-clock
time (naive, what nights are cut on) and ``utc_offset_min`` the offset when the file says it.
All detector and classifier scores are stored, so thresholds can change without re-running.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class SchemaInfo(Base):
    """One row: the schema version and which app created the database."""

    __tablename__ = "schema_info"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    app: Mapped[str] = mapped_column(String(32), default="trapgui")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class Deployment(Base):
    """One trap folder."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # absolute, resolved
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    last_scan_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # "local" (a folder on disk) or "remote" (images of a remote job, cached locally)
    kind: Mapped[str] = mapped_column(String(16), default="local")
    # the night cut-off hour its nights were computed with (a rescan with another regroups)
    night_cutoff_hour: Mapped[int] = mapped_column(Integer, default=12)
    # ---- trap (deployment) metadata, edited by the user (core.trap_metadata validates) ----
    # a stable identifier for published records (Camtrap DP deploymentID, Darwin Core locationID)
    uid: Mapped[str | None] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    site_name: Mapped[str | None] = mapped_column(String(255))
    latitude: Mapped[float | None] = mapped_column(Float)  # decimal degrees, WGS84
    longitude: Mapped[float | None] = mapped_column(Float)
    coordinate_uncertainty_m: Mapped[float | None] = mapped_column(Float)
    # the camera clock: a fixed UTC offset (minutes east of UTC) or an IANA time-zone name (the
    # clock followed that zone's daylight-saving changes); at most one of the two is set
    clock_utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    clock_time_zone: Mapped[str | None] = mapped_column(String(64))
    trap_description: Mapped[str | None] = mapped_column(Text)
    light_description: Mapped[str | None] = mapped_column(Text)
    # camera local time, like images.captured_at; NULL = the first / last image
    deployment_start: Mapped[dt.datetime | None] = mapped_column(DateTime)
    deployment_end: Mapped[dt.datetime | None] = mapped_column(DateTime)
    notes: Mapped[str | None] = mapped_column(Text)

    nights: Mapped[list[Night]] = relationship(back_populates="deployment")


class Night(Base):
    """The night that began on the evening of ``date`` (camera local time)."""

    __tablename__ = "nights"
    __table_args__ = (UniqueConstraint("deployment_id", "date"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    date: Mapped[dt.date] = mapped_column(Date)
    start: Mapped[dt.datetime | None] = mapped_column(DateTime)  # first capture
    end: Mapped[dt.datetime | None] = mapped_column(DateTime)  # last capture

    deployment: Mapped[Deployment] = relationship(back_populates="nights")


class Image(Base):
    """One image file. ``night_id`` NULL means the "undated" group (see ``time_error``)."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("deployment_id", "rel_path"),
        Index("ix_images_night_captured", "night_id", "captured_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    night_id: Mapped[int | None] = mapped_column(
        ForeignKey("nights.id", ondelete="SET NULL"), index=True
    )
    rel_path: Mapped[str] = mapped_column(Text)  # POSIX separators, relative to deployment
    size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    time_source: Mapped[str] = mapped_column(String(32))  # core.types.TimeSource
    time_error: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="ok", index=True)  # ImageState
    error: Mapped[str | None] = mapped_column(Text)  # why it is unreadable
    scanned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class PipelineConfig(Base):
    """A processing configuration (models + settings that change results); queue key."""

    __tablename__ = "pipeline_configs"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of canonical config
    name: Mapped[str] = mapped_column(String(255))
    config: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class ProcessingRun(Base):
    __tablename__ = "processing_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_configs.id", ondelete="CASCADE"), index=True
    )
    models: Mapped[dict] = mapped_column(JSON)  # key -> {name, version, sha256}
    devices: Mapped[list] = mapped_column(JSON)
    settings: Mapped[dict] = mapped_column(JSON)
    app_version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running/finished/cancelled/crashed
    images_done: Mapped[int] = mapped_column(Integer, default=0)
    images_failed: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[list] = mapped_column(JSON, default=list)  # e.g. OOM batch halvings


class Job(Base):
    """Queue row: the state of one image for one pipeline configuration."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("image_id", "pipeline_id"),
        Index("ix_jobs_pipeline_state", "pipeline_id", "state"),
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_configs.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default="pending")  # JobState
    worker: Mapped[str | None] = mapped_column(String(128), index=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float)  # unix time
    # crashes of the program while this job was in flight (a fatal signal of its own)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # stops from outside (killed, power cut) while it was in flight: weaker evidence
    interruptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("processing_runs.id", ondelete="SET NULL"), index=True
    )
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)


class Detection(Base):
    __tablename__ = "detections"
    __table_args__ = (Index("ix_detections_image_pipeline", "image_id", "pipeline_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_configs.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("processing_runs.id", ondelete="SET NULL"), index=True
    )
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, index=True)
    detector: Mapped[str] = mapped_column(String(64))
    # denormalised best labels so the detections table sorts/filters without joins
    binary_label: Mapped[str | None] = mapped_column(String(64))
    binary_score: Mapped[float | None] = mapped_column(Float, index=True)
    top_label: Mapped[str | None] = mapped_column(String(255), index=True)
    top_score: Mapped[float | None] = mapped_column(Float, index=True)
    top_rank: Mapped[str | None] = mapped_column(String(16), index=True)
    # the individual this detection belongs to (tracking); NULL = not tracked yet
    occurrence_id: Mapped[int | None] = mapped_column(
        ForeignKey("occurrences.id", ondelete="SET NULL"), index=True
    )
    # appearance embedding for tracking: float16 values, little-endian (see tracking docs)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    # crop sharpness (ml.appearance.crop_sharpness; only ratios between crops mean something)
    sharpness: Mapped[float | None] = mapped_column(Float)


class Occurrence(Base):
    """One individual: the detections of one insect across consecutive images of a night.

    Machine-made occurrences are rebuilt whenever tracking runs again; ``pinned`` ones (a person
    reviewed or edited them) are never rebuilt or deleted by the machine."""

    __tablename__ = "occurrences"
    __table_args__ = (Index("ix_occurrences_night_pipeline", "night_id", "pipeline_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_configs.id", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    night_id: Mapped[int | None] = mapped_column(ForeignKey("nights.id", ondelete="CASCADE"))
    # indexed like every foreign key: deleting a parent row looks its children up
    first_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True)
    last_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True)
    first_seen: Mapped[dt.datetime | None] = mapped_column(DateTime)  # camera local time
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime)
    n_detections: Mapped[int] = mapped_column(Integer, default=0)
    best_detection_id: Mapped[int | None] = mapped_column(
        ForeignKey("detections.id", ondelete="SET NULL", use_alter=True), index=True
    )
    # the machine's label: a score-weighted vote over the occurrence's detections
    label: Mapped[str | None] = mapped_column(String(255), index=True)
    label_rank: Mapped[str | None] = mapped_column(String(16))
    label_score: Mapped[float | None] = mapped_column(Float)
    # something that sits at the same place night after night (a screw, a stain, a label):
    # left out of counts; a person can unflag it
    fixture: Mapped[bool] = mapped_column(Boolean, default=False)
    fixture_reason: Mapped[str | None] = mapped_column(Text)
    # True: ``fixture`` is a person's decision (kept by every re-tracking; the occurrence is
    # pinned with it); False: the machine's flag
    fixture_reviewed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # the occurrence sat still in nearly every image of its night: what other nights of the
    # trap compare with to flag fixtures ({"box": relative median box, "presence",
    # "n_images", "reference_distance", "embedding": mean, or null}); NULL: not a candidate
    fixture_candidate: Mapped[dict | None] = mapped_column(JSON)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(16), default="machine")  # machine | human
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)
    # a person's review (db.review_store; db.final_labels reads it): NULL not reviewed,
    # "confirmed" (the machine's label), "relabelled", "rejected" (not an insect)
    review_state: Mapped[str | None] = mapped_column(String(16), index=True)
    review_label: Mapped[str | None] = mapped_column(String(255))
    review_rank: Mapped[str | None] = mapped_column(String(32))
    identified_by: Mapped[str | None] = mapped_column(String(255))
    identified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # UTC, naive
    # the machine's label when the person decided (``label`` goes on following re-tracking)
    reviewed_machine_label: Mapped[str | None] = mapped_column(String(255))
    reviewed_machine_rank: Mapped[str | None] = mapped_column(String(16))
    reviewed_machine_score: Mapped[float | None] = mapped_column(Float)
    # a person merged this occurrence into another one (it keeps no detections)
    merged_into: Mapped[int | None] = mapped_column(Integer)
    # the review columns are a person's decision carried from this occurrence of another
    # model configuration of the night (db.review_carry); NULL: decided here, or not at all
    carried_from: Mapped[int | None] = mapped_column(Integer)


class Morphospecies(Base):
    """A taxon a reviewer made up ("Noctuidae sp. A"): offered by the relabel picker."""

    __tablename__ = "morphospecies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    rank: Mapped[str] = mapped_column(String(32), default="morphospecies")
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float, default=0.0)


class ReviewAction(Base):
    """One review step a person can undo: what every touched occurrence and detection was
    before and became (``changes``: {"occurrences": {id: {"before": {...}, "after": {...}}},
    "detections": [[id, from, to], ...], "created": [ids]})."""

    __tablename__ = "review_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # confirm | relabel | reject | fixture | merge...
    pipeline_id: Mapped[int | None] = mapped_column(Integer)
    night_id: Mapped[int | None] = mapped_column(Integer, index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[dict] = mapped_column(JSON)
    by: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[float] = mapped_column(Float, default=0.0)
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ReviewCarry(Base):
    """What became of a person's decision on ``source_occurrence_id`` in another model
    configuration (``target_pipeline_id``) of the same night (``db.review_carry``):
    ``carried`` onto ``target_occurrence_ids[0]`` (by review action ``action_id``), ``check``
    (it could not be carried one-to-one; ``reason`` says why, ``target_occurrence_ids`` are the
    occurrences a person should look at), or ``undone`` (a person took the carry back: it is
    not carried again)."""

    __tablename__ = "review_carries"
    __table_args__ = (UniqueConstraint("source_occurrence_id", "target_pipeline_id"),
                      Index("ix_review_carries_target", "target_pipeline_id", "night_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    source_occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"))
    target_pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline_configs.id", ondelete="CASCADE"))
    night_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # carried | check | undone
    target_occurrence_ids: Mapped[list] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(Text)
    action_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float, default=0.0)


class Classification(Base):
    __tablename__ = "classifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    detection_id: Mapped[int] = mapped_column(
        ForeignKey("detections.id", ondelete="CASCADE"), index=True
    )
    model: Mapped[str] = mapped_column(String(64))
    rank: Mapped[str] = mapped_column(String(16))  # core.types.Rank
    label: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float)
    top_labels: Mapped[list] = mapped_column(JSON)
    top_scores: Mapped[list] = mapped_column(JSON)


class RemoteTask(Base):
    """Outbox for remote jobs: every claimed task and its result, until the server has it."""

    __tablename__ = "remote_tasks"
    __table_args__ = (
        UniqueConstraint("server", "job_id", "pipeline_slug", "task_id"),
        Index("ix_remote_tasks_state", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    server: Mapped[str] = mapped_column(Text)  # base URL (no token)
    job_id: Mapped[int] = mapped_column(Integer, index=True)
    pipeline_slug: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(128))
    image_id: Mapped[str] = mapped_column(String(128))
    image_url: Mapped[str] = mapped_column(Text)
    reply_subject: Mapped[str | None] = mapped_column(Text)
    # claimed -> result_ready -> posted; failed results are result_ready with error set
    state: Mapped[str] = mapped_column(String(16), default="claimed")
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    post_attempts: Mapped[int] = mapped_column(Integer, default=0)
    local_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    claimed_at: Mapped[float] = mapped_column(Float)
    posted_at: Mapped[float | None] = mapped_column(Float)

