"""Night rows of one deployment: creating them as dates appear and keeping each night's
first/last capture up to date (moving a trap to another cut-off hour: ``db.night_regroup``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from trapgui.core.nights import night_date
from trapgui.db.database import Database
from trapgui.db.night_regroup import remove_empty_nights
from trapgui.db.tables import Night


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


def refresh_night_bounds(session, dep_id: int) -> None:
    """Night start/end = first/last capture; nights left without images are removed unless an
    occurrence (a person's work, perhaps) still refers to one."""
    remove_empty_nights(session, dep_id)
