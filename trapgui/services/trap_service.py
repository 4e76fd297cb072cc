"""Trap (deployment) metadata for the window: the properties dialog and the trap tree's
tooltip. Every method queries the catalogue: call them from a background thread. Plain frozen
dataclasses out; the field table (labels, help) is ``core.trap_metadata.FIELDS``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from trapgui.core.trap_metadata import FIELDS, FieldSpec, TrapMetadataError
from trapgui.db import trap_metadata
from trapgui.services.results_service import resolve_db


@dataclass(frozen=True, slots=True)
class TrapInfo:
    id: int
    uid: str
    name: str
    path: str
    values: dict[str, str]  # field key -> text as shown in the dialog ("" = not set)
    clock: str  # "America/New_York", "UTC-04:00" or "not set"
    start: dt.datetime | None  # effective: as set, else the first image (camera local time)
    end: dt.datetime | None
    first_image: dt.datetime | None
    last_image: dt.datetime | None
    images: int
    nights: int
    has_coordinates: bool
    clock_known: bool

    @property
    def missing_for_publishing(self) -> list[str]:
        """What Camtrap DP (and a useful Darwin Core archive) still need."""
        return [what for what, ok in (("coordinates", self.has_coordinates),
                                      ("camera clock", self.clock_known)) if not ok]

    @property
    def tooltip(self) -> str:
        """The trap tree's tooltip: folder, site, position, clock, light, deployment span."""
        v = self.values
        lines = [self.path]
        if v["site_name"]:
            lines.append(f"Site: {v['site_name']}")
        if self.has_coordinates:
            where = f"{v['latitude']}, {v['longitude']}"
            if v["coordinate_uncertainty_m"]:
                where += f" (± {v['coordinate_uncertainty_m']} m)"
            lines.append(f"Position: {where}")
        lines.append(f"Camera clock: {self.clock}")
        if v["light_description"]:
            lines.append(f"Light: {v['light_description']}")
        if self.start and self.end:
            lines.append(f"Deployment: {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}")
        if self.missing_for_publishing:
            lines.append("Not set yet: " + ", ".join(self.missing_for_publishing)
                         + " (Properties…)")
        return "\n".join(lines)


def _info(record: trap_metadata.TrapRecord) -> TrapInfo:
    return TrapInfo(record.id, record.uid, record.name, record.path, record.values.as_text(),
                    record.clock.describe(), record.start, record.end, record.first_image,
                    record.last_image, record.images, record.nights, record.has_coordinates,
                    record.clock.known)


class TrapService:
    def __init__(self, db):
        self._source = db

    @property
    def db(self):
        return resolve_db(self._source)

    @staticmethod
    def fields() -> tuple[FieldSpec, ...]:
        """The editable fields in dialog order (key, label, help, example); no query."""
        return FIELDS

    def list(self) -> list[TrapInfo]:
        return [_info(r) for r in trap_metadata.list_traps(self.db)]

    def get(self, trap_id: int) -> TrapInfo:
        return _info(trap_metadata.get_trap(self.db, trap_id))

    def tooltips(self) -> dict[int, str]:
        """Trap id -> tooltip text, for the whole tree in one query."""
        return {t.id: t.tooltip for t in self.list()}

    @staticmethod
    def check_form(texts: dict[str, str], sample: dt.datetime | None = None) -> tuple[dict, str]:
        """(field key -> problem, a preview of ``sample`` on the typed camera clock): the
        dialog's live validation. No query, but time-zone files are read: background."""
        from trapgui.core.local_time import iso, localize, parse_clock
        from trapgui.core.trap_metadata import field_problems

        problems = field_problems(texts)
        preview = ""
        if sample is not None and "clock" not in problems:
            clock = parse_clock(texts.get("clock", ""))
            exact = localize(sample, None, clock)
            preview = (f"The first photo, {sample:%Y-%m-%d %H:%M:%S} on the camera, is "
                       f"{iso(exact)}." if exact else
                       "Without a camera clock, photo times stay camera local time.")
        return problems, preview

    @staticmethod
    def time_zone_names() -> list[str]:
        """IANA time-zone names for the dialog's completer (reads the time-zone database)."""
        import zoneinfo

        return sorted(zoneinfo.available_timezones())

    def validate(self, trap_id: int, changes: dict[str, str]) -> list[str]:
        """The problems ``changes`` would have (one sentence each); nothing is saved."""
        from trapgui.core.trap_metadata import apply_changes

        record = trap_metadata.get_trap(self.db, trap_id)
        try:
            apply_changes(record.values, changes)
        except TrapMetadataError as exc:
            return list(exc.problems)
        return []

    def contents(self, trap_id: int) -> trap_metadata.TrapContents:
        """What the catalogue holds of the trap (what removing it would take away)."""
        return trap_metadata.trap_contents(self.db, trap_id)

    def rename(self, trap_id: int, name: str) -> TrapInfo:
        """A new display name; raises UserInputError / TrapMetadataError with a sentence."""
        return _info(trap_metadata.rename_trap(self.db, trap_id, name))

    def remove(self, trap_id: int) -> trap_metadata.TrapContents:
        """Remove the trap and its results from the catalogue (its image files stay on
        disk); returns what was removed."""
        return trap_metadata.remove_trap(self.db, trap_id)

    def update(self, trap_id: int, changes: dict[str, str]) -> TrapInfo:
        """Save ``changes`` (field key -> text; "" clears); raises TrapMetadataError, whose
        ``problems`` lists every invalid field, and saves nothing then."""
        return _info(trap_metadata.update_trap(self.db, trap_id, changes))
