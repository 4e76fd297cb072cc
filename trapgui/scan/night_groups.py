"""Night rows of one deployment: creating them as dates appear, regrouping images when the
cut-off hour changes, and keeping each night's first/last capture up to date."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, insert, select, update

from trapgui.core.nights import night_date
from trapgui.db.database import Database
from trapgui.db.tables import Image, Night
from trapgui.scan.files import iter_chunks

_CHUNK = 2000


class NightIds:
    """Night ids of one deployment by evening date, creating rows as dates appear."""

    def __init__(self, db: Database, dep_id: int, cutoff_hour: int):
        self.dep_id = dep_id
        self.cutoff_hour = cutoff_hour
        with db.session() as s:
            self.ids = dict(s.execute(select(Night.date, Night.id).where(
                Night.deployment_id == dep_id)).all())

    def id_for(self, session, captured_at: dt.datetime | None) -> int | None:
        if captured_at is None:
            return None
        date = night_date(captured_at, self.cutoff_hour)
        night_id = self.ids.get(date)
        if night_id is None:  # another scan of this folder (another process) may have made it
            night_id = session.execute(select(Night.id).where(
                Night.deployment_id == self.dep_id, Night.date == date)).scalar_one_or_none()
        if night_id is None:
            night_id = session.execute(insert(Night).values(
                deployment_id=self.dep_id, date=date, start=captured_at, end=captured_at
            ).returning(Night.id)).scalar_one()
            self.ids[date] = night_id
        return night_id


def regroup_nights(session, dep_id: int, nights: NightIds) -> None:
    """The cut-off hour changed: move every dated image to the night it now belongs to."""
    rows = session.execute(select(Image.id, Image.night_id, Image.captured_at).where(
        Image.deployment_id == dep_id, Image.captured_at.is_not(None))).all()
    moves = []
    for image_id, night_id, captured_at in rows:
        target = nights.id_for(session, captured_at)
        if target != night_id:
            moves.append({"id": image_id, "night_id": target})
    for part in iter_chunks(moves, _CHUNK):
        session.execute(update(Image), part)


def refresh_night_bounds(session, dep_id: int) -> None:
    """Night start/end = first/last capture; nights left without images are removed."""
    spans = {r[0]: (r[1], r[2]) for r in session.execute(
        select(Image.night_id, func.min(Image.captured_at), func.max(Image.captured_at))
        .where(Image.deployment_id == dep_id, Image.night_id.is_not(None))
        .group_by(Image.night_id))}
    for night_id, start, end in session.execute(select(Night.id, Night.start, Night.end).where(
            Night.deployment_id == dep_id)).all():
        span = spans.get(night_id)
        if span is None:
            session.execute(delete(Night).where(Night.id == night_id))
        elif span != (start, end):
            session.execute(update(Night).where(Night.id == night_id).values(
                start=span[0], end=span[1]))
