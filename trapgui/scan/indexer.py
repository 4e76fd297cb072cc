"""Indexing a trap folder into the catalogue: deployment, nights and images. Incremental.

A scan lists the folder (one stat per file), compares (size, mtime) with what the catalogue
holds from one query, and opens only new or changed files. Then:

- new files are added (unreadable ones too, with the reason: nothing is ever dropped);
- changed files (size or mtime) are re-read, and their processing jobs go back to pending with
  their old results deleted, so the engine processes them again;
- vanished files are marked ``missing``; their rows and results stay;
- unchanged files cost nothing: scanning the same folder twice writes nothing the second time.

Writes are committed in chunks, so a cancelled scan keeps what it did (a rescan finishes the
rest); files are marked missing only after a complete listing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from trapgui.core.errors import UserInputError
from trapgui.core.file_names import to_stored
from trapgui.core.nights import DEFAULT_CUTOFF_HOUR, check_cutoff_hour
from trapgui.core.types import ImageState, JobState, TimeSource
from trapgui.db import jobqueue
from trapgui.db.database import Database, user_error
from trapgui.db.trap_metadata import remove_trap
from trapgui.db.tables import Deployment, Image, Job, Night
from trapgui.scan.files import FoundFile, Probe, discover, iter_chunks, probe_file
from trapgui.scan.night_groups import NightIds, refresh_night_bounds
from trapgui.scan.probe_pool import default_workers, probe_all
from trapgui.scan.trap_claim import Claimed, claim_images, traps_inside

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total); phases below
PHASE_LISTING, PHASE_READING, PHASE_SAVING = "listing", "reading", "saving"
CHUNK = 2000
_SQL_CHUNK = 500


@dataclass
class ScanReport:
    folder: str
    deployment_id: int
    name: str = ""  # the trap's name (the folder's name unless renamed)
    found: int = 0  # image files on disk now
    added: int = 0
    changed: int = 0  # size or mtime changed: re-read and queued again
    returned: int = 0  # marked missing before, back on disk now
    missing: int = 0  # vanished in this scan
    unchanged: int = 0
    unreadable: int = 0  # in the catalogue now (not missing), this folder
    undated: int = 0  # in the catalogue now (not missing), no night
    file_time: int = 0  # in the catalogue now (not missing), dated only by the file's mtime
    nights: int = 0
    new_problems: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason)
    folder_errors: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    # subfolders (relative, POSIX) left out because each is a trap of its own
    own_traps: list[str] = field(default_factory=list)
    claimed: Claimed | None = None  # images this new trap took over from the one that held them
    # the hour its nights are cut at now (another ``cutoff_hour`` is applied by the regroup job)
    cutoff_hour: int = DEFAULT_CUTOFF_HOUR
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def wrote_anything(self) -> bool:
        return bool(self.added or self.changed or self.returned or self.missing)


def _cancel_check(cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if hasattr(cancel, "is_set"):
        return cancel.is_set
    return cancel


def check_folder(folder: str | Path) -> Path:
    """The folder as an absolute path, or a UserInputError that says what is wrong."""
    path = Path(folder).expanduser()
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise UserInputError(f"The folder {path} does not exist.",
                             hint="Check the spelling, or that the card or drive is connected.")
    except OSError as exc:
        raise UserInputError(f"The folder {path} cannot be opened: {exc.strerror or exc}.")
    if not resolved.is_dir():
        raise UserInputError(f"{path} is a file, not a folder.",
                             hint="Choose the folder that contains the trap's images.")
    try:
        with os.scandir(resolved):
            pass
    except PermissionError:
        raise UserInputError(f"The folder {path} cannot be read: permission denied.")
    return resolved


def scan_folder(db: Database, folder: str | Path, cutoff_hour: int = DEFAULT_CUTOFF_HOUR,
                progress: ProgressFn | None = None, cancel=None,
                workers: int | None = None) -> ScanReport:
    """Index ``folder`` as one deployment (trap). ``cutoff_hour`` cuts the nights of a new
    trap; a catalogued trap keeps the hour it records (``ScanReport.cutoff_hour``) until the
    regroup job (``pipeline.night_regroup``) moves it. ``cancel`` is a callable or an Event;
    ``workers`` header-reading processes (default: one per CPU, at most 4; 1 = in-process).

    Every image is in one trap: subfolders that are traps of their own are left out, and a
    folder that lay in another trap takes its images, with their results, out of it
    (``scan.trap_claim``)."""
    started = time.perf_counter()
    check_cutoff_hour(cutoff_hour)
    root = check_folder(folder)
    cancelled = _cancel_check(cancel)
    report_progress = progress or (lambda phase, done, total: None)

    report_progress(PHASE_LISTING, 0, 0)
    stored_root = to_stored(str(root))  # the folder's name may not be valid text either
    with db.session() as s:
        own_traps = traps_inside(s, stored_root)  # folders below that are traps of their own
        dep_id = s.execute(select(Deployment.id).where(
            Deployment.path == stored_root)).scalar_one_or_none()
    listing = discover(root, frozenset(own_traps))
    if dep_id is None and not listing.files:
        why = "; ".join(f"{p}: {r}" for p, r in listing.folder_errors)
        raise UserInputError(
            f"No images found in {stored_root}: it contains no .jpg, .jpeg, .png, .tif or .tiff files "
            "(subfolders included)" + (f" outside its subfolders that are traps of their own "
                                      f"({', '.join(own_traps)})." if own_traps else "."),
            hint=f"Some folders could not be read: {why}" if why else
            "Choose the folder the trap camera wrote its images to.")
    created = dep_id is None
    if created:
        with db.write_session() as s:
            # re-read under the write lock: another process may be scanning this folder too
            dep_id = s.execute(select(Deployment.id).where(
                Deployment.path == stored_root)).scalar_one_or_none()
            if dep_id is None:
                dep_id = s.execute(insert(Deployment).values(
                    path=stored_root, name=to_stored(root.name) or stored_root, kind="local",
                    night_cutoff_hour=cutoff_hour).returning(Deployment.id)).scalar_one()
    try:
        # a folder that lay in another trap takes its images (and their results) with it
        claimed = claim_images(db, dep_id, stored_root)
    except UserInputError:
        if created:
            remove_trap(db, dep_id)
        raise
    with db.session() as s:
        old_cutoff = s.execute(select(Deployment.night_cutoff_hour).where(
            Deployment.id == dep_id)).scalar_one()
        # plain Core rows (no ORM loading): this is most of a no-change rescan's time
        existing = {
            r[1]: r for r in s.connection().execute(select(
                Image.id, Image.rel_path, Image.size, Image.mtime, Image.state, Image.error).where(
                Image.deployment_id == dep_id))}
    report = ScanReport(folder=stored_root, deployment_id=dep_id, found=len(listing.files),
                        folder_errors=listing.folder_errors, skipped=listing.skipped,
                        own_traps=own_traps, claimed=claimed)
    if own_traps:
        # rows of a sub-trap's images this trap still holds (a subfolder scanned on its own
        # before this rule, whose images were already there) stay, as missing ones do
        keep = tuple(f"{t}/" for t in own_traps)
        existing = {k: v for k, v in existing.items() if not k.startswith(keep)}

    new: list[FoundFile] = []
    reread: list[tuple[FoundFile, int, bool]] = []  # (file, image id, content changed)
    missing, unreadable = ImageState.MISSING.value, ImageState.UNREADABLE.value
    for f in listing.files:
        row = existing.pop(f.rel_path, None)
        if row is None:
            new.append(f)
        elif row.size != f.size or row.mtime != f.mtime:
            reread.append((f, row.id, True))
        elif row.state == missing:
            reread.append((f, row.id, False))
        elif row.state == unreadable and probe_file(f).error != row.error:
            # fixing permissions or a link leaves size and mtime alone: unreadable files (few)
            # are tried again on every scan, and written only when the outcome differs
            reread.append((f, row.id, True))
        else:
            report.unchanged += 1
    vanished = [r.id for r in existing.values() if r.state != missing]

    # a trap's nights are all cut at the hour it records; moving it to another hour is the
    # regroup job's (pipeline.night_regroup: it keeps occurrences and decisions, and tracks)
    nights = NightIds(db, dep_id, old_cutoff)
    todo: list[tuple[FoundFile, int | None, bool]] = [(f, None, False) for f in new] + reread
    done = 0
    workers = default_workers() if workers is None else max(1, workers)
    stream = probe_all([f for f, _, _ in todo], workers)
    try:
        for chunk in iter_chunks(todo, CHUNK):
            probes = []
            for _ in chunk:
                if done % 100 == 0:
                    report_progress(PHASE_READING, done, len(todo))
                    if cancelled():
                        report.cancelled = True
                        break
                probes.append(next(stream))
                done += 1
            if probes:
                report_progress(PHASE_SAVING, done, len(todo))
                _write_chunk(db, dep_id, nights, chunk[:len(probes)], probes, report)
            if report.cancelled:
                break
    finally:
        stream.close()
    if todo and not report.cancelled:
        report_progress(PHASE_READING, done, len(todo))

    report.cutoff_hour = old_cutoff
    if not report.cancelled and (vanished or report.wrote_anything):
        with db.write_session() as s:
            for part in iter_chunks(vanished, _SQL_CHUNK):
                s.execute(update(Image).where(Image.id.in_(part)).values(
                    state=ImageState.MISSING.value))
            report.missing = len(vanished)
            s.execute(update(Deployment).where(Deployment.id == dep_id).values(
                last_scan_at=_utcnow()))
    if report.wrote_anything:
        with db.write_session() as s:
            refresh_night_bounds(s, dep_id)
    _fill_totals(db, report)
    report.seconds = time.perf_counter() - started
    return report


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _image_values(p: Probe, f: FoundFile, now: dt.datetime) -> dict:
    return {"size": f.size, "mtime": f.mtime, "width": p.width, "height": p.height,
            "captured_at": p.captured_at, "utc_offset_min": p.offset_min,
            "time_source": p.time_source.value, "time_error": p.time_error,
            "state": p.state.value, "error": p.error, "scanned_at": now}


def _write_chunk(db: Database, dep_id: int, nights: NightIds,
                 chunk: Sequence[tuple[FoundFile, int | None, bool]], probes: Sequence[Probe],
                 report: ScanReport) -> None:
    """One transaction for the chunk; if any row cannot be stored, the others are stored row by
    row and that one is kept as an unreadable row saying why: one bad row never costs the
    chunk (it once cost a whole folder: a name SQLite could not store rolled back 2,000 rows)."""
    now = _utcnow()
    items = [(f, image_id, changed, p, _image_values(p, f, now))
             for (f, image_id, changed), p in zip(chunk, probes)]
    with db.write_session() as s:
        try:
            _store_rows(s, dep_id, nights, items, report)
            return
        except Exception as exc:  # noqa: BLE001 - anything a row can make the driver raise
            if not _row_specific(exc, db):
                raise
            log.warning("Storing %d scanned files failed; storing them one by one.",
                        len(items), exc_info=True)
        for item in items:
            try:
                _store_rows(s, dep_id, nights, [item], report)
            except Exception as exc:  # noqa: BLE001
                if not _row_specific(exc, db):
                    raise
                _store_fallback(s, dep_id, item, exc, now, report)


def _row_specific(exc: Exception, db: Database) -> bool:
    """A value the driver refuses (not text, too big, a constraint), as opposed to trouble
    with the catalogue itself (locked, disk full, damaged): that stops the scan, with its
    clear message, instead of being retried row by row."""
    return not isinstance(exc, OperationalError) and user_error(exc, db.path) is None


def _store_rows(session, dep_id: int, nights: NightIds, items: list, report: ScanReport) -> None:
    """Insert/update ``items`` in a savepoint: all of them, or nothing (and the exception)."""
    known_nights = dict(nights.ids)
    added = changed = returned = 0
    problems, requeue, inserts, updates = [], [], [], []
    try:
        with session.begin_nested():
            for f, image_id, content_changed, p, values in items:
                if p.error:
                    problems.append((f.rel_path, p.error))
                values = dict(values, night_id=nights.id_for(session, p.captured_at))
                if image_id is None:
                    inserts.append(dict(values, deployment_id=dep_id, rel_path=f.rel_path))
                else:
                    updates.append(dict(values, id=image_id))
                    if content_changed:
                        requeue.append(image_id)
                        changed += 1
                    else:
                        returned += 1
            if inserts:
                # Core executemany on the table: no ORM bookkeeping per row (several times
                # faster). A file another process's scan of this folder has just added is
                # left to it.
                result = session.execute(sqlite_insert(Image.__table__).on_conflict_do_nothing(
                    index_elements=["deployment_id", "rel_path"]), inserts)
                added = result.rowcount if result.rowcount >= 0 else len(inserts)
            if updates:
                session.execute(update(Image), updates)
            for part in iter_chunks(requeue, _SQL_CHUNK):
                _requeue(session, part)
    except BaseException:
        nights.ids = known_nights  # nights made in the rolled-back savepoint are gone too
        raise
    report.added += added
    report.changed += changed
    report.returned += returned
    report.new_problems.extend(problems)


def _store_fallback(session, dep_id: int, item, exc: Exception, now: dt.datetime,
                    report: ScanReport) -> None:
    """The row could not be stored as it is: keep the file as unreadable, with the reason."""
    f, image_id, _, _, _ = item
    reason = f"the catalogue could not store this file's details ({type(exc).__name__}: {exc})"
    rel = f.rel_path.encode("utf-8", "backslashreplace").decode("utf-8")
    values = {"size": 0, "mtime": 0.0, "width": None, "height": None, "captured_at": None,
              "utc_offset_min": None, "time_source": TimeSource.NONE.value,
              "time_error": None, "state": ImageState.UNREADABLE.value, "error": reason[:500],
              "scanned_at": now, "night_id": None}
    log.warning("Cannot store %r: %s", f.path, reason)
    try:
        with session.begin_nested():
            if image_id is None:
                result = session.execute(sqlite_insert(Image.__table__).on_conflict_do_nothing(
                    index_elements=["deployment_id", "rel_path"]),
                    [dict(values, deployment_id=dep_id, rel_path=rel)])
                report.added += max(result.rowcount, 0)
            else:
                session.execute(update(Image).where(Image.id == image_id).values(**values))
                report.changed += 1
    except Exception:  # noqa: BLE001 - reported below; the rest of the folder goes on
        log.warning("Cannot store %r even as unreadable", f.path, exc_info=True)
    report.new_problems.append((rel, reason))


def _requeue(session, image_ids: list[int]) -> None:
    """A changed file's old results describe other pixels: drop them and process it again
    (a machine box a person's decision holds waits for the new results, which keep it only
    where they find the same box: ``db.jobqueue``)."""
    jobqueue.delete_results_of_changed_files(session, image_ids)
    session.execute(update(Job).where(Job.image_id.in_(image_ids)).values(
        state=JobState.PENDING.value, worker=None, lease_expires_at=None, error=None,
        run_id=None, attempts=0, updated_at=time.time()))


def _fill_totals(db: Database, report: ScanReport) -> None:
    present = Image.state != ImageState.MISSING.value
    with db.session() as s:
        dep = Image.deployment_id == report.deployment_id
        report.unreadable = s.execute(select(func.count()).where(
            dep, Image.state == ImageState.UNREADABLE.value)).scalar_one()
        report.undated = s.execute(select(func.count()).where(
            dep, present, Image.night_id.is_(None))).scalar_one()
        report.file_time = s.execute(select(func.count()).where(
            dep, present, Image.time_source == TimeSource.MTIME.value)).scalar_one()
        report.nights = s.execute(select(func.count()).select_from(Night).where(
            Night.deployment_id == report.deployment_id)).scalar_one()
        report.name = s.execute(select(Deployment.name).where(
            Deployment.id == report.deployment_id)).scalar_one()
