"""Trap (deployment) metadata in the catalogue: read, find and update (validated by
``core.trap_metadata``). Plain frozen dataclasses out, never ORM objects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from pathlib import Path

from sqlalchemy import func, select, update

from trapgui.core.errors import UserInputError
from trapgui.core.local_time import CameraClock
from trapgui.core.trap_metadata import TrapValues, apply_changes
from trapgui.core.types import JobState
from trapgui.db.database import Database
from trapgui.db.tables import Deployment, Image, Night


@dataclass(frozen=True, slots=True)
class TrapRecord:
    id: int
    uid: str
    path: str
    kind: str
    values: TrapValues
    first_image: dt.datetime | None  # camera local time of the first / last dated image
    last_image: dt.datetime | None
    images: int
    nights: int

    @property
    def name(self) -> str:
        return self.values.name

    @property
    def clock(self) -> CameraClock:
        return self.values.clock

    @property
    def start(self) -> dt.datetime | None:
        """The deployment start: as set, else the first image."""
        return self.values.deployment_start or self.first_image

    @property
    def end(self) -> dt.datetime | None:
        return self.values.deployment_end or self.last_image

    @property
    def has_coordinates(self) -> bool:
        return self.values.latitude is not None and self.values.longitude is not None


_COLUMNS = (Deployment.id, Deployment.uid, Deployment.path, Deployment.kind, Deployment.name,
            Deployment.site_name, Deployment.latitude, Deployment.longitude,
            Deployment.coordinate_uncertainty_m, Deployment.clock_utc_offset_min,
            Deployment.clock_time_zone, Deployment.trap_description,
            Deployment.light_description, Deployment.deployment_start,
            Deployment.deployment_end, Deployment.notes)


def _records(session, where=None) -> list[TrapRecord]:
    q = select(*_COLUMNS).order_by(Deployment.name, Deployment.id)
    if where is not None:
        q = q.where(where)
    rows = session.execute(q).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    spans = {r[0]: r[1:] for r in session.execute(
        select(Image.deployment_id, func.min(Image.captured_at), func.max(Image.captured_at),
               func.count()).where(Image.deployment_id.in_(ids)).group_by(Image.deployment_id))}
    nights = dict(session.execute(select(Night.deployment_id, func.count()).where(
        Night.deployment_id.in_(ids)).group_by(Night.deployment_id)).all())
    out = []
    for r in rows:
        first, last, images = spans.get(r.id, (None, None, 0))
        values = TrapValues(
            name=r.name, site_name=r.site_name, latitude=r.latitude, longitude=r.longitude,
            coordinate_uncertainty_m=r.coordinate_uncertainty_m,
            clock=CameraClock(r.clock_utc_offset_min, r.clock_time_zone),
            trap_description=r.trap_description, light_description=r.light_description,
            deployment_start=r.deployment_start, deployment_end=r.deployment_end, notes=r.notes)
        out.append(TrapRecord(r.id, r.uid or "", r.path, r.kind, values, first, last,
                              int(images or 0), int(nights.get(r.id, 0))))
    return out


def list_traps(db: Database, ids=None) -> list[TrapRecord]:
    with db.session() as s:
        return _records(s, None if ids is None else Deployment.id.in_(list(ids)))


def get_trap(db: Database, trap_id: int) -> TrapRecord:
    with db.session() as s:
        found = _records(s, Deployment.id == trap_id)
    if not found:
        raise UserInputError(f"There is no trap with id {trap_id} in the catalogue.",
                             hint="`trapgui trap list` shows the traps and their ids.")
    return found[0]


def resolve_trap(db: Database, ref: str) -> TrapRecord:
    """A trap by id (``3``), name (``vermont``) or folder path; a clear error when none or
    several match."""
    text = str(ref).strip()
    traps = list_traps(db)
    if text.isdigit():
        match = [t for t in traps if t.id == int(text)]
        if match:
            return match[0]
    try:
        wanted = str(Path(text).expanduser().resolve())
    except (OSError, RuntimeError):
        wanted = None
    match = [t for t in traps if t.path == wanted]
    if not match:
        match = [t for t in traps if t.name == text] or \
                [t for t in traps if t.name.casefold() == text.casefold()]
    if len(match) == 1:
        return match[0]
    if not match:
        known = ", ".join(f"{t.id} ({t.name})" for t in traps) or "none yet"
        raise UserInputError(f"No trap in the catalogue is called {text!r}.",
                             hint=f"Give a trap's id, name or folder; the traps are: {known}.")
    listed = "; ".join(f"id {t.id}: {t.path}" for t in match)
    raise UserInputError(f"Several traps are called {text!r} ({listed}).",
                         hint="Give the trap's id or folder instead.")


def update_trap(db: Database, trap_id: int, changes: dict[str, str | None]) -> TrapRecord:
    """Validate ``changes`` (field key -> text as typed; "" clears) against the trap's
    current values and store them; raises TrapMetadataError (nothing saved) when invalid."""
    current = get_trap(db, trap_id)
    new = apply_changes(current.values, changes, trap=current.name)
    values = {f.name: getattr(new, f.name) for f in fields(TrapValues) if f.name != "clock"}
    values["clock_utc_offset_min"] = new.clock.offset_min
    values["clock_time_zone"] = new.clock.time_zone
    with db.write_session() as s:
        s.execute(update(Deployment).where(Deployment.id == trap_id).values(**values))
    return get_trap(db, trap_id)



@dataclass(frozen=True, slots=True)
class TrapContents:
    """What the catalogue holds of one trap: what removing it takes away (the image files on
    disk are never touched)."""

    images: int
    nights: int
    processed: int  # images with a finished processing job (any model configuration)
    detections: int
    occurrences: int

    def describe(self) -> str:
        """"120 images in 3 nights, 80 processed, 2,345 detections, 410 individuals"."""
        def n(count: int, word: str) -> str:
            return f"{count:,} {word}{'' if count == 1 else 's'}"
        text = f"{n(self.images, 'image')} in {n(self.nights, 'night')}"
        if self.processed or self.detections:
            text += (f", {self.processed:,} processed, {n(self.detections, 'detection')}, "
                     f"{n(self.occurrences, 'individual')}")
        return text


def _trap_images(trap_id: int):
    return select(Image.id).where(Image.deployment_id == trap_id)


def trap_contents(db: Database, trap_id: int) -> TrapContents:
    from trapgui.db.tables import Detection, Job, Occurrence

    get_trap(db, trap_id)  # a clear error for an unknown id
    images = _trap_images(trap_id)
    with db.session() as s:
        def count(stmt) -> int:
            return int(s.execute(stmt).scalar() or 0)
        return TrapContents(
            count(select(func.count()).select_from(Image).where(Image.deployment_id == trap_id)),
            count(select(func.count()).select_from(Night).where(Night.deployment_id == trap_id)),
            count(select(func.count(func.distinct(Job.image_id))).where(
                Job.image_id.in_(images), Job.state.in_((JobState.DONE.value, JobState.FAILED.value)))),
            count(select(func.count()).select_from(Detection).where(Detection.image_id.in_(images))),
            count(select(func.count()).select_from(Occurrence)
                  .where(Occurrence.deployment_id == trap_id)))


def rename_trap(db: Database, trap_id: int, name: str) -> TrapRecord:
    """A new display name (validated as the ``name`` field: not empty, printable)."""
    if not str(name).strip():
        raise UserInputError("A trap needs a name: the new name is empty.")
    return update_trap(db, trap_id, {"name": str(name).strip()})


def remove_trap(db: Database, trap_id: int) -> TrapContents:
    """Remove a trap and everything the catalogue holds of it (nights, images, jobs,
    detections and their classifications, individuals) in one transaction; its image files
    stay on disk. Returns what was removed. Explicit deletes, children first, so the removal
    does not depend on how an old catalogue's foreign keys were declared."""
    from sqlalchemy import delete

    from trapgui.db.tables import Classification, Detection, Job, Occurrence, RemoteTask

    removed = trap_contents(db, trap_id)
    images = _trap_images(trap_id)
    detections = select(Detection.id).where(Detection.image_id.in_(images))
    with db.write_session() as s:
        s.execute(update(Occurrence).where(Occurrence.deployment_id == trap_id)
                  .values(best_detection_id=None))
        s.execute(update(Detection).where(Detection.image_id.in_(images))
                  .values(occurrence_id=None))
        s.execute(delete(Classification).where(Classification.detection_id.in_(detections)))
        s.execute(delete(Detection).where(Detection.image_id.in_(images)))
        s.execute(delete(Occurrence).where(Occurrence.deployment_id == trap_id))
        s.execute(delete(Job).where(Job.image_id.in_(images)))
        s.execute(update(RemoteTask).where(RemoteTask.local_image_id.in_(images))
                  .values(local_image_id=None))
        s.execute(delete(Image).where(Image.deployment_id == trap_id))
        s.execute(delete(Night).where(Night.deployment_id == trap_id))
        s.execute(delete(Deployment).where(Deployment.id == trap_id))
    return removed
