"""Remote images in the local catalogue, so they can be viewed with overlays like local ones.

Each (server, job) becomes a deployment of kind ``"remote"`` whose folder is a cache folder
under the user data folder; downloaded images are kept there and registered as ``images`` rows
(header read, capture time, night), and their detections are written through the processing
queue exactly like a local folder's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy import insert, select, update

from trapgui.core.nights import DEFAULT_CUTOFF_HOUR, night_date
from trapgui.core.safe_text import printable
from trapgui.db.database import Database
from trapgui.db.tables import Deployment, Image, Night
from trapgui.scan.files import FoundFile, probe_file

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
_PLAIN_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # an id that can be a file name as it is
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


def server_folder_name(server: str) -> str:
    """``host-port-<hash>``: readable, and distinct for two paths on one host."""
    parts = urlsplit(server)
    host = _SAFE.sub("-", parts.netloc or "server").strip("-") or "server"
    digest = hashlib.sha256(server.encode("utf-8")).hexdigest()[:8]
    return f"{host}-{digest}"


def image_tag(image_id: str) -> str:
    """The image id as it is when it is a short lower-case name, else ``#`` and 16 hex digits
    of its sha256 (``a/b`` and ``a_b``, ``IMG1`` and ``img1`` on a case-blind disk, or two long
    ids sharing their first 100 characters stay apart)."""
    image_id = str(image_id)
    if _PLAIN_ID.fullmatch(image_id):
        return image_id
    return "#" + hashlib.sha256(image_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def url_file_name(url: str) -> str:
    """The file name at the end of an image URL's path (Antenna's image URLs are storage keys
    that end in the original file name, ``…/20220622200400-00-79.jpg?X-Amz-…``), printable;
    never the query, which may carry a signature. Empty when the path ends in ``/``."""
    return printable(unquote(urlsplit(url).path.rsplit("/", 1)[-1]))


def image_filename(image_id: str, url: str) -> str:
    """The cache file of one remote image: ``<stem> [<tag>].<ext>``, where the stem is the file
    name in the image URL (recognisable in the viewer, e.g. ``20220622200400-snapshot``) and the
    tag is :func:`image_tag` of the image id, so two ids never share a file. When the stem is
    the id itself the name is just ``<id>.<ext>``.

    Distinct because the tag is distinct per id and can be read back from the name: stems and
    plain ids never contain `` [`` (the characters are limited to letters, digits, ``._-``)."""
    base = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    stem, ext = os.path.splitext(base)
    ext = ext.lower() if ext.lower() in _EXTS else ".jpg"
    tag = image_tag(image_id)
    readable = _SAFE.sub("_", stem).strip("._-")[:80] or _SAFE.sub("_", str(image_id)).strip("._-")[:80]
    if readable == tag and tag not in _WINDOWS_RESERVED:
        return tag + ext
    return f"{readable or 'image'} [{tag}]{ext}"


class RemoteImageCatalogue:
    def __init__(self, db: Database, cache_root: Path, server: str,
                 cutoff_hour: int = DEFAULT_CUTOFF_HOUR):
        self.db = db
        self.server = server
        self.root = Path(cache_root) / "remote" / server_folder_name(server)
        self.cutoff_hour = cutoff_hour
        self._deployments: dict[int, int] = {}

    def job_folder(self, job_id: int) -> Path:
        return self.root / f"job-{int(job_id)}"

    def image_path(self, job_id: int, image_id: str, url: str) -> Path:
        return self.job_folder(job_id) / image_filename(image_id, url)

    def deployment_id(self, job_id: int, pipeline_slug: str) -> int:
        if job_id in self._deployments:
            return self._deployments[job_id]
        folder = self.job_folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = str(folder.resolve())
        host = urlsplit(self.server).netloc or self.server
        with self.db.write_session() as s:
            dep = s.execute(select(Deployment.id).where(Deployment.path == path)).scalar()
            if dep is None:
                dep = s.execute(insert(Deployment).values(
                    path=path, name=f"Antenna job {job_id} ({pipeline_slug}, {host})",
                    kind="remote", night_cutoff_hour=self.cutoff_hour,
                ).returning(Deployment.id)).scalar_one()
        self._deployments[job_id] = dep
        return dep

    def register(self, job_id: int, pipeline_slug: str, files: list[Path]) -> list[int]:
        """Catalogue downloaded files of one job (re-registering a file updates its row);
        returns their image ids in the same order."""
        dep = self.deployment_id(job_id, pipeline_slug)
        folder = self.job_folder(job_id)
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        prepared = []
        for path in files:
            st = path.stat()
            rel = path.relative_to(folder).as_posix()
            probe = probe_file(FoundFile(rel, str(path), st.st_size, st.st_mtime))
            prepared.append((rel, st, probe))
        ids: list[int] = []
        with self.db.write_session() as s:
            nights = dict(s.execute(select(Night.date, Night.id).where(
                Night.deployment_id == dep)).all())
            for rel, st, p in prepared:
                night_id = None
                if p.captured_at is not None:
                    date = night_date(p.captured_at, self.cutoff_hour)
                    night_id = nights.get(date)
                    if night_id is None:
                        night_id = s.execute(insert(Night).values(
                            deployment_id=dep, date=date, start=p.captured_at,
                            end=p.captured_at).returning(Night.id)).scalar_one()
                        nights[date] = night_id
                    else:
                        _widen_night(s, night_id, p.captured_at)
                values = {"size": st.st_size, "mtime": st.st_mtime, "width": p.width,
                          "height": p.height, "captured_at": p.captured_at,
                          "utc_offset_min": p.offset_min, "time_source": p.time_source.value,
                          "time_error": p.time_error, "state": p.state.value, "error": p.error,
                          "scanned_at": now, "night_id": night_id}
                found = s.execute(select(Image.id).where(
                    Image.deployment_id == dep, Image.rel_path == rel)).scalar()
                if found is None:
                    found = s.execute(insert(Image).values(
                        deployment_id=dep, rel_path=rel, **values).returning(Image.id)).scalar_one()
                else:
                    s.execute(update(Image).where(Image.id == found).values(**values))
                ids.append(found)
        return ids


def _widen_night(session, night_id: int, when: dt.datetime) -> None:
    start, end = session.execute(select(Night.start, Night.end).where(Night.id == night_id)).one()
    if start is None or when < start or end is None or when > end:
        session.execute(update(Night).where(Night.id == night_id).values(
            start=min(start, when) if start else when, end=max(end, when) if end else when))
