"""Trap (deployment) metadata: the fields a person fills in, and their validation.

One table of fields (:data:`FIELDS`) serves the CLI (``trapgui trap set --help``), the trap's
properties dialog and the exports, so a field has one name, one explanation and one rule.
Values arrive as text (what was typed); :func:`apply_changes` parses and checks them and
returns typed :class:`TrapValues`, or raises :class:`TrapMetadataError` listing every problem
as a sentence ("Latitude must be between -90 and 90 degrees, not 95.").
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from trapgui.core.errors import UserInputError
from trapgui.core.local_time import CameraClock, parse_clock

MAX_TEXT = 10_000  # free text fields (descriptions, notes)
MAX_NAME = 255
MAX_UNCERTAINTY_M = 20_037_509  # half the Earth's circumference: anything more says nothing


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str  # the TrapValues attribute and the service's change key
    option: str  # the CLI option
    label: str  # the dialog's label
    help: str  # one sentence: CLI --help and the dialog's tooltip
    example: str = ""


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("name", "--name", "Name", "Name of the trap as it appears in the app and in "
              "exports (default: the folder's name).", "Vermont garden"),
    FieldSpec("site_name", "--site", "Site", "Name of the site or location where the trap stood "
              "(Camtrap DP locationName, Darwin Core locality).", "Lake Shore Farm, VT"),
    FieldSpec("latitude", "--latitude", "Latitude", "Latitude in decimal degrees, WGS84, "
              "north positive (from -90 to 90).", "44.4759"),
    FieldSpec("longitude", "--longitude", "Longitude", "Longitude in decimal degrees, WGS84, "
              "east positive (from -180 to 180).", "-73.2121"),
    FieldSpec("coordinate_uncertainty_m", "--uncertainty", "Uncertainty (m)", "Radius in metres "
              "of the smallest circle that contains the trap's true position (GPS: about 10).",
              "10"),
    FieldSpec("clock", "--timezone", "Camera clock", "The camera clock's time: a fixed UTC "
              "offset such as -04:00 (the clock never changed) or an IANA time-zone name such as "
              "America/New_York (the clock followed daylight saving). Photo times are the "
              "camera's local time; this turns them into exact times.", "America/New_York"),
    FieldSpec("trap_description", "--trap-description", "Trap", "The trap: model or build, "
              "sheet, camera, how it was set up (free text).",
              "AMI trap, white sheet 1 x 1.5 m, Raspberry Pi HQ camera"),
    FieldSpec("light_description", "--light", "Light", "The light: lamp type, power, "
              "spectrum, schedule (free text).", "LepiLED 15 W + 365 nm UV, dusk to dawn"),
    FieldSpec("deployment_start", "--start", "Deployment start", "When the deployment began, "
              "camera local time (YYYY-MM-DD HH:MM, or a date); empty: the first image.",
              "2022-06-01 18:00"),
    FieldSpec("deployment_end", "--end", "Deployment end", "When the deployment ended, camera "
              "local time (YYYY-MM-DD HH:MM, or a date: its end); empty: the last image.",
              "2022-09-30"),
    FieldSpec("notes", "--notes", "Notes", "Anything else worth keeping with the data "
              "(free text).", "Sheet replaced on 2022-07-14"),
)
FIELD_KEYS = tuple(f.key for f in FIELDS)


@dataclass(frozen=True, slots=True)
class TrapValues:
    """A trap's metadata, typed and valid. None = not set."""

    name: str
    site_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    coordinate_uncertainty_m: float | None = None
    clock: CameraClock = CameraClock()
    trap_description: str | None = None
    light_description: str | None = None
    deployment_start: dt.datetime | None = None  # camera local time
    deployment_end: dt.datetime | None = None
    notes: str | None = None

    def as_text(self) -> dict[str, str]:
        """Every field as it would be typed (the dialog's initial values)."""
        return {key: format_value(key, getattr(self, key)) for key in FIELD_KEYS}


class TrapMetadataError(UserInputError):
    """One or more fields are invalid; ``problems`` has one sentence per field."""

    def __init__(self, problems: list[str], trap: str | None = None):
        head = f"The metadata of trap {trap!r} were not saved: " if trap else ""
        super().__init__(head + " ".join(problems))
        self.problems = problems


def format_value(key: str, value) -> str:
    if value is None:
        return ""
    if key == "clock":
        return value.text()
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    return str(value)


# ---- one parser per kind of field -------------------------------------------------------------
def _number(text: str, what: str) -> float:
    t = text.strip().replace(",", ".") if text.count(",") == 1 and "." not in text else text.strip()
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"{what} must be a number in decimal degrees, not {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {text!r}")
    return value


def parse_latitude(text: str) -> float:
    value = _number(text, "Latitude")
    if not -90.0 <= value <= 90.0:
        raise ValueError(f"Latitude must be between -90 and 90 degrees, not {text.strip()}")
    return value


def parse_longitude(text: str) -> float:
    value = _number(text, "Longitude")
    if not -180.0 <= value <= 180.0:
        raise ValueError(f"Longitude must be between -180 and 180 degrees, not {text.strip()}")
    return value


def parse_uncertainty(text: str) -> float:
    t = text.strip().lower().removesuffix("m").strip()
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"Coordinate uncertainty must be a distance in metres, not {text!r}") \
            from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Coordinate uncertainty must be more than 0 metres, not {text.strip()}")
    if value > MAX_UNCERTAINTY_M:
        raise ValueError(f"Coordinate uncertainty of {text.strip()} m is more than half the "
                         "Earth's circumference")
    return value


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_local_datetime(text: str, what: str, *, end_of_day: bool = False) -> dt.datetime:
    t = text.strip().replace("T", " ")
    if _DATE_RE.match(t):
        try:
            day = dt.date.fromisoformat(t)
        except ValueError:
            raise ValueError(f"{what} {text!r} is not a real date") from None
        return dt.datetime.combine(day, dt.time(23, 59, 59) if end_of_day else dt.time())
    if re.search(r"(Z|[+-]\d{2}:?\d{2})$", t) and not _DATE_RE.match(t):
        raise ValueError(f"{what} is camera local time: give it without a UTC offset "
                         f"(YYYY-MM-DD HH:MM), not {text!r}")
    try:
        value = dt.datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{what} must be a date and time such as 2022-06-21 19:30, not "
                         f"{text!r}") from None
    return value.replace(microsecond=0)


def _free_text(text: str, what: str, limit: int = MAX_TEXT) -> str | None:
    t = text.strip()
    if len(t) > limit:
        raise ValueError(f"{what} is too long ({len(t):,} characters; at most {limit:,})")
    if any(ord(c) < 32 and c not in "\n\t" for c in t):
        raise ValueError(f"{what} contains control characters")
    return t or None


def parse_field(key: str, text: str | None):
    """The typed value of one field from what was typed; "" or None clears it (except the
    name). Raises ValueError with a sentence."""
    text = "" if text is None else str(text)
    if key == "name":
        name = _free_text(text, "The name", MAX_NAME)
        if not name or "\n" in name:
            raise ValueError("The name cannot be empty or span several lines")
        return name
    if key == "clock":
        return parse_clock(text)
    if not text.strip():
        return None
    if key == "site_name":
        return _free_text(text, "The site name", MAX_NAME)
    if key == "latitude":
        return parse_latitude(text)
    if key == "longitude":
        return parse_longitude(text)
    if key == "coordinate_uncertainty_m":
        return parse_uncertainty(text)
    if key == "deployment_start":
        return parse_local_datetime(text, "The deployment start")
    if key == "deployment_end":
        return parse_local_datetime(text, "The deployment end", end_of_day=True)
    if key in ("trap_description", "light_description", "notes"):
        label = {"trap_description": "The trap description",
                 "light_description": "The light description", "notes": "The notes"}[key]
        return _free_text(text, label)
    raise KeyError(key)


def check(values: TrapValues) -> list[str]:
    """Problems between fields (each field alone is valid)."""
    problems = []
    if (values.latitude is None) != (values.longitude is None):
        problems.append("Give both latitude and longitude, or neither.")
    if values.coordinate_uncertainty_m is not None and values.latitude is None:
        problems.append("A coordinate uncertainty needs coordinates: give latitude and longitude "
                        "too.")
    if (values.deployment_start and values.deployment_end
            and values.deployment_end <= values.deployment_start):
        problems.append("The deployment end must be after its start.")
    return problems


def apply_changes(current: TrapValues, changes: Mapping[str, str | None],
                  trap: str | None = None) -> TrapValues:
    """``current`` with ``changes`` (field key -> typed text) applied and checked."""
    problems = []
    updates = {}
    for key, text in changes.items():
        if key not in FIELD_KEYS:
            problems.append(f"There is no trap field called {key!r}.")
            continue
        try:
            updates[key] = parse_field(key, text)
        except ValueError as exc:
            problems.append(_sentence(str(exc)))
    new = replace(current, **updates) if not problems else current
    problems += check(new) if not problems else []
    if problems:
        raise TrapMetadataError(problems, trap)
    return new


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith((".", "!", "?")) else text + "."


def field_problems(texts: Mapping[str, str]) -> dict[str, str]:
    """Every field's problem, from the whole form as typed (the dialog shows each under its
    field); key "" holds problems between fields. Empty when the form is valid."""
    problems: dict[str, str] = {}
    values = {}
    for key in FIELD_KEYS:
        try:
            values[key] = parse_field(key, texts.get(key, ""))
        except ValueError as exc:
            problems[key] = _sentence(str(exc))
    if not problems:
        between = check(TrapValues(**values))
        if between:
            problems[""] = " ".join(between)
    return problems
