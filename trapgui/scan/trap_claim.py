"""Every image file is in one trap: a folder made a trap of its own takes its images, with
their results, out of the trap that held it so far (the folder it lies in).

Images are rows keyed by (trap, path in the trap); their detections, classifications and
processing jobs hang on the image id, so moving the row moves all of them. The individuals
(tracked insects) hang on a night of the trap: they move to the same night (date) of the new
trap, with the person's review decisions on them. An individual whose detections lie both in
the moving folder and elsewhere (a tracking that linked two cameras' images of one night) has
no single trap to go to: then nothing is moved and the caller says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, update

from trapgui.core.errors import UserInputError
from trapgui.core.safe_text import printable
from trapgui.db.database import Database
from trapgui.db.tables import Deployment, Detection, Image, Night, Occurrence, ReviewAction
from trapgui.scan.files import iter_chunks
from trapgui.scan.night_groups import refresh_night_bounds

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a new trap took over from the trap that held its folder."""

    from_id: int
    from_name: str
    images: int
    detections: int
    individuals: int


def enclosing_trap(session, stored_root: str) -> tuple[int, str, str, int] | None:
    """(id, name, path, cut-off hour) of the deepest local trap whose folder holds
    ``stored_root``, or None."""
    found = None
    for dep_id, name, path, cutoff in session.execute(select(
            Deployment.id, Deployment.name, Deployment.path, Deployment.night_cutoff_hour).where(
            Deployment.kind == "local")):
        if stored_root.startswith(path.rstrip("/") + "/") and (
                found is None or len(path) > len(found[2])):
            found = (dep_id, name, path, cutoff)
    return found


def traps_inside(session, stored_root: str) -> list[str]:
    """Folders (relative to ``stored_root``, POSIX) below it that are traps of their own."""
    prefix = stored_root.rstrip("/") + "/"
    paths = session.execute(select(Deployment.path).where(
        func.substr(Deployment.path, 1, len(prefix)) == prefix)).scalars()
    return sorted(p[len(prefix):] for p in paths)


def _under(prefix: str):
    return func.substr(Image.rel_path, 1, len(prefix)) == prefix


def rows_under(session, dep_id: int, rel_folders: list[str]) -> int:
    """How many image rows of trap ``dep_id`` lie in these relative folders."""
    if not rel_folders:
        return 0
    cond = [_under(f.rstrip("/") + "/") for f in rel_folders]
    return session.execute(select(func.count()).select_from(Image).where(
        Image.deployment_id == dep_id, or_(*cond))).scalar_one()


def claim_images(db: Database, target_id: int, stored_root: str) -> Claimed | None:
    """Move the rows of the images below ``stored_root`` from the trap that holds that folder
    into trap ``target_id`` (whose folder it is). None when no trap held them. Raises
    UserInputError (nothing moved) when an individual spans the moving folder and the rest."""
    with db.write_session() as s:
        parent = enclosing_trap(s, stored_root)
        if parent is None:
            return None
        parent_id, parent_name, parent_path, cutoff = parent
        prefix = stored_root[len(parent_path.rstrip("/")) + 1:] + "/"
        taken = set(s.execute(select(Image.rel_path).where(
            Image.deployment_id == target_id)).scalars())
        rows = [r for r in s.execute(select(Image.id, Image.rel_path, Image.night_id).where(
            Image.deployment_id == parent_id, _under(prefix))).all()
            if r.rel_path[len(prefix):] not in taken]  # already in the new trap: left alone
        if not rows:
            return None
        moving = {r.id for r in rows}
        individuals = _moving_individuals(s, parent_id, moving, prefix, parent_name)
        # the new trap's nights mirror the old ones by date (same cut-off hour), so every
        # individual keeps its night; a rescan with another cut-off regroups them as usual
        s.execute(update(Deployment).where(Deployment.id == target_id).values(
            night_cutoff_hour=cutoff))
        night_map = _mirror_nights(s, target_id, {r.night_id for r in rows} - {None})
        for part in iter_chunks(rows, _CHUNK):
            s.execute(update(Image), [
                {"id": r.id, "deployment_id": target_id, "rel_path": r.rel_path[len(prefix):],
                 "night_id": night_map.get(r.night_id)} for r in part])
        emptied = _emptied_nights(s, parent_id, set(night_map))
        # individuals without detections (merged into another) follow their emptied night
        orphans = set(s.execute(select(Occurrence.id).where(
            Occurrence.deployment_id == parent_id, Occurrence.night_id.in_(emptied),
            Occurrence.id.not_in(individuals))).scalars()) if emptied else set()
        for occ_id, night_id in s.execute(select(Occurrence.id, Occurrence.night_id).where(
                Occurrence.id.in_(individuals | orphans))).all():
            s.execute(update(Occurrence).where(Occurrence.id == occ_id).values(
                deployment_id=target_id, night_id=night_map.get(night_id)))
        for old in emptied:  # the undo history of a night that moved whole goes with it
            s.execute(update(ReviewAction).where(ReviewAction.night_id == old).values(
                night_id=night_map[old]))
        detections = s.execute(select(func.count()).select_from(Detection).where(
            Detection.image_id.in_(select(Image.id).where(Image.deployment_id == target_id))
        )).scalar_one()
        refresh_night_bounds(s, parent_id)
        refresh_night_bounds(s, target_id)
    return Claimed(parent_id, parent_name, len(rows), detections, len(individuals))


def check_split(db: Database, stored_root: str, folders: list[str]) -> None:
    """Before a trap at ``stored_root`` gives the images of ``folders`` (relative) to traps of
    their own: raises UserInputError when an individual spans two of them (or one of them and
    the rest), so that a split either moves everything or changes nothing."""
    with db.session() as s:
        parent = s.execute(select(Deployment.id, Deployment.name).where(
            Deployment.path == stored_root)).first()
        if parent is None:
            return
        prefixes = tuple(f.rstrip("/") + "/" for f in folders)
        groups: dict[int, set[str | None]] = {}
        for occ_id, rel in s.execute(select(Detection.occurrence_id, Image.rel_path).join(
                Image, Image.id == Detection.image_id).where(
                Image.deployment_id == parent.id, Detection.occurrence_id.is_not(None))):
            group = next((p for p in prefixes if rel.startswith(p)), None)
            groups.setdefault(occ_id, set()).add(group)
    mixed = [o for o, g in groups.items() if len(g) > 1]
    if mixed:
        raise _mixed_error(len(mixed), parent.name, "its site subfolders")


def _mixed_error(count: int, trap: str, where: str) -> UserInputError:
    return UserInputError(
        f"{count} individual{'s' * (count != 1)} of the trap '{printable(trap)}' "
        f"{'were' if count != 1 else 'was'} tracked across images of {where}, so its images "
        "cannot move to traps of their own; nothing was changed.",
        hint="Keep the folder as one trap, or remove the trap and scan its subfolders again "
        "(their results are then computed anew).")


def _moving_individuals(s, parent_id: int, moving: set[int], prefix: str,
                        parent_name: str) -> set[int]:
    """Individuals of the parent with a detection on a moving image; refuses mixed ones."""
    owners: dict[int, set[bool]] = {}
    for occ_id, image_id in s.execute(select(Detection.occurrence_id, Detection.image_id).join(
            Occurrence, Occurrence.id == Detection.occurrence_id).where(
            Occurrence.deployment_id == parent_id)).all():
        owners.setdefault(occ_id, set()).add(image_id in moving)
    mixed = [o for o, sides in owners.items() if len(sides) == 2]
    if mixed:
        raise _mixed_error(len(mixed), parent_name,
                           f"{printable(prefix)} and of the rest of it")
    return {o for o, sides in owners.items() if sides == {True}}


def _mirror_nights(s, target_id: int, old_ids: set[int]) -> dict[int, int]:
    if not old_ids:
        return {}
    mine = dict(s.execute(select(Night.date, Night.id).where(
        Night.deployment_id == target_id)).all())
    out = {}
    for old_id, date, start, end in s.execute(select(Night.id, Night.date, Night.start,
                                                     Night.end).where(Night.id.in_(old_ids))):
        if date not in mine:
            mine[date] = s.execute(insert(Night).values(
                deployment_id=target_id, date=date, start=start, end=end
            ).returning(Night.id)).scalar_one()
        out[old_id] = mine[date]
    return out


def _emptied_nights(s, parent_id: int, old_ids: set[int]) -> set[int]:
    still = set(s.execute(select(Image.night_id).where(
        Image.deployment_id == parent_id, Image.night_id.in_(old_ids)).distinct()).scalars())
    return old_ids - still
