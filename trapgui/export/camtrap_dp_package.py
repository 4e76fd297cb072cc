"""Camtrap DP 1.0.2 package metadata: the options a user gives (title, contributors,
licences, where the photos are published, sampling design) and ``datapackage.json``."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from trapgui.core.errors import UserInputError
from trapgui.version import __version__

VERSION = "1.0.2"
_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/"
PROFILE_URL = _BASE + "camtrap-dp-profile.json"
SCHEMA_URLS = {name: f"{_BASE}{name}-table-schema.json"
               for name in ("deployments", "media", "observations")}
SAMPLING_DESIGNS = ("simpleRandom", "systematicRandom", "clusteredRandom", "experimental",
                    "targeted", "opportunistic")
CONTRIBUTOR_ROLES = ("contact", "principalInvestigator", "rightsHolder", "publisher",
                     "contributor")
@dataclass(frozen=True)
class Contributor:
    title: str
    email: str | None = None
    role: str = "contact"

    @classmethod
    def parse(cls, text: str, role: str | None = None) -> "Contributor":
        """``Name``, ``Name <email>`` or ``Name <email> role``."""
        m = re.match(r"^\s*([^<]+?)\s*(?:<([^>]+)>)?\s*(\w+)?\s*$", text or "")
        if not m or not m.group(1).strip():
            raise UserInputError(f"{text!r} is not a contributor: write it as "
                                 "\"Name <email>\" (the email is optional).")
        chosen = role or m.group(3) or "contact"
        if chosen not in CONTRIBUTOR_ROLES:
            raise UserInputError(f"{chosen!r} is not a Camtrap DP contributor role: use one of "
                                 f"{', '.join(CONTRIBUTOR_ROLES)}.")
        return cls(m.group(1).strip(), m.group(2), chosen)

    def as_dict(self) -> dict:
        out = {"title": self.title, "role": self.role}
        if self.email:
            out["email"] = self.email
        return out


@dataclass(frozen=True)
class CamtrapOptions:
    title: str | None = None
    description: str | None = None
    project_title: str | None = None
    contributors: tuple[Contributor, ...] = ()
    data_license: str | None = None  # e.g. CC0-1.0 or CC-BY-4.0 (SPDX id or a URL)
    media_license: str | None = None
    media_url: str | None = None  # media are hosted at <media_url>/<trap folder>/<image path>
    sampling_design: str = "targeted"  # light attracts: a targeted design (see docs)
    keywords: tuple[str, ...] = ("light trap", "moths", "insects", "automated monitoring")

    def __post_init__(self):
        if self.sampling_design not in SAMPLING_DESIGNS:
            raise UserInputError(f"{self.sampling_design!r} is not a Camtrap DP sampling design: "
                                 f"use one of {', '.join(SAMPLING_DESIGNS)}.")
        if bool(self.data_license) != bool(self.media_license):
            raise UserInputError("Camtrap DP needs a licence for the data and one for the media, "
                                 "or neither: give both (e.g. CC0-1.0 and CC-BY-4.0).")
        if self.media_url and not re.match(r"^[a-z][a-z0-9+.-]*://", self.media_url, re.I):
            raise UserInputError(f"The media URL {self.media_url!r} must start with a scheme "
                                 "such as https://.")


def package_descriptor(o: "CamtrapOptions", traps, coverage, has_events: bool,
                       about: dict) -> dict:
    """``datapackage.json``: the resources, the project, coverage and the about object."""
    title = o.title or ("Light-trap observations from " + ", ".join(t.name for t in traps))
    # the dialect is stated: a reader that sniffs it takes the "|" of tag lists for the
    # delimiter in large files (frictionless does)
    resources = [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource",
                  "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                  "dialect": {"delimiter": ",", "quoteChar": '"', "header": True},
                  "schema": SCHEMA_URLS[name]}
                 for name in ("deployments", "media", "observations")]
    levels = ["media"] + (["event"] if has_events else [])
    package = {
        "resources": resources,
        "profile": PROFILE_URL,
        "name": _slug(title),
        "id": str(uuid.uuid4()),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "title": title,
        "contributors": [c.as_dict() for c in o.contributors],
        "description": o.description or (
            "Insects photographed on the lit sheet of automated light traps, detected, "
            "tracked and identified with trapgui. " + about["counting"]),
        "version": "1.0",
        "keywords": list(o.keywords),
        "sources": [{"title": "trapgui", "version": __version__}],
        "project": {
            "title": o.project_title or title,
            "samplingDesign": o.sampling_design,
            "captureMethod": ["timeLapse"],
            "individualAnimals": False,
            "observationLevel": levels,
        },
        "spatial": _spatial(traps),
        "temporal": {"start": coverage.first.isoformat(),
                     "end": coverage.last.isoformat()},
        "taxonomic": [{"scientificName": name, **({"taxonRank": rank} if rank else {})}
                      for name, rank in sorted(coverage.taxa.items())],
        "trapgui": about,
    }
    if o.data_license:
        package["licenses"] = [_licence(o.data_license, "data"),
                               _licence(o.media_license, "media")]
    return package



def _spatial(traps) -> dict:
    points = sorted({(t.values.longitude, t.values.latitude) for t in traps})
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    if len(set(lons)) == 1 or len(set(lats)) == 1:  # a degenerate box is not a polygon
        return {"type": "MultiPoint", "coordinates": [list(p) for p in points]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _licence(text: str, scope: str) -> dict:
    if re.match(r"^[a-z]+://", text, re.I):
        return {"path": text, "scope": scope}
    return {"name": text, "scope": scope}


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", title.lower()).strip("-._")
    return slug[:100] or "trapgui-export"
