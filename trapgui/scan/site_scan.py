"""Scanning a folder as one trap, or as one trap per site subfolder (``site_folders``).

The choice (``TRAP_CHOICES``) is the user's: ``one``, ``subfolders``, or ``auto`` (one trap per
site subfolder when there are at least two of them, else one trap). ``plan_traps`` turns it
into what will happen, with a sentence for every surprise; ``scan_traps`` does it:

- split: each site subfolder is scanned as a trap of its own; images outside the sites
  (directly in the folder, in night or undated subfolders) make the folder's own trap, named
  after it, so every file still ends up a catalogue row;
- a folder already catalogued as one trap is never split silently: ``auto`` keeps it and says
  how to split it; ``subfolders`` splits it, and the images move to their site's trap with
  their detections, classifications, individuals and review decisions (``trap_claim``); the
  folder's trap is removed when nothing is left in it;
- a folder split before stays split, whatever the choice: a sub-trap is never also part of its
  parent (``scan_folder`` leaves it out and says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from trapgui.core.errors import UserInputError
from trapgui.core.file_names import to_stored
from trapgui.core.nights import DEFAULT_CUTOFF_HOUR
from trapgui.core.safe_text import printable
from trapgui.db.database import Database
from trapgui.db.tables import Deployment, Image
from trapgui.db.trap_metadata import remove_trap
from trapgui.scan.indexer import ScanReport, check_folder, scan_folder
from trapgui.scan.site_folders import SiteLayout, find_site_folders
from trapgui.scan.trap_claim import check_split, rows_under, traps_inside

TRAP_CHOICES = ("auto", "one", "subfolders")
FolderProgress = Callable[[str, str, int, int], None]  # (folder name, phase, done, total)


@dataclass(frozen=True)
class TrapPlan:
    folder: Path  # resolved
    split: bool  # one trap per site subfolder
    layout: SiteLayout | None  # None: not looked at (``one``)
    notes: tuple[str, ...] = ()
    # the folder is catalogued as one trap holding images of its site subfolders
    already_one_trap: bool = False
    already_split: bool = False  # some site subfolders are traps of their own already


@dataclass
class TrapsReport:
    folder: str
    split: bool
    reports: list[ScanReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def deployment_ids(self) -> list[int]:
        return [r.deployment_id for r in self.reports]

    @property
    def cancelled(self) -> bool:
        return any(r.cancelled for r in self.reports)


def check_choice(choice: str) -> str:
    if choice not in TRAP_CHOICES:
        raise UserInputError(f"Unknown trap choice {choice!r}: use one of "
                             f"{', '.join(TRAP_CHOICES)}.")
    return choice


def plan_traps(db: Database, folder: str | Path, choice: str = "auto",
               layout: SiteLayout | None = None) -> TrapPlan:
    """What scanning ``folder`` with ``choice`` will make (lists directories: background)."""
    check_choice(choice)
    root = check_folder(folder)
    if choice == "one":
        return TrapPlan(root, False, None)
    layout = layout or find_site_folders(root)
    stored = to_stored(str(root))
    with db.session() as s:
        parent = s.execute(select(Deployment.id).where(
            Deployment.path == stored)).scalar_one_or_none()
        held = 0 if parent is None else rows_under(s, parent, layout.site_names)
        split_before = set(traps_inside(s, stored)) & set(layout.site_names)
    name = printable(root.name or stored)
    if not layout.sites:
        notes = () if choice == "auto" else (
            f"No subfolder of {name} holds dated trap images of its own (a subfolder named by "
            "a date is one of its nights): it is scanned as one trap.",)
        return TrapPlan(root, False, layout, notes)
    if choice == "auto" and held:
        return TrapPlan(root, False, layout, (
            f"{name} is one trap in the catalogue, though it holds {layout.describe()}: it "
            f"stays one trap; `trapgui scan --traps subfolders {printable(stored)}` makes one "
            "trap of each, taking their images and results along.",), already_one_trap=True)
    if choice == "auto" and not layout.splits and not split_before:
        return TrapPlan(root, False, layout)
    return TrapPlan(root, True, layout, already_one_trap=bool(held),
                    already_split=bool(split_before))


def scan_traps(db: Database, plan: TrapPlan, cutoff_hour: int = DEFAULT_CUTOFF_HOUR,
               progress: FolderProgress | None = None, cancel=None,
               workers: int | None = None) -> TrapsReport:
    """Scan as ``plan`` says; ``progress(folder name, phase, done, total)``."""
    show = progress or (lambda name, phase, done, total: None)
    stopped = (cancel.is_set if hasattr(cancel, "is_set") else cancel) or (lambda: False)
    root = plan.folder
    out = TrapsReport(to_stored(str(root)), plan.split, notes=list(plan.notes))

    def scan(path: Path, name: str) -> ScanReport:
        return scan_folder(db, path, cutoff_hour=cutoff_hour, cancel=cancel, workers=workers,
                           progress=lambda ph, d, t: show(name, ph, d, t))

    if not plan.split:
        out.reports.append(scan(root, root.name))
        return out
    if plan.already_one_trap:
        check_split(db, out.folder, plan.layout.site_names)  # all traps, or nothing changes
    for site in plan.layout.sites:
        out.reports.append(scan(Path(site.path), site.name))
        if out.reports[-1].cancelled or stopped():
            return out
    moved = sum(r.claimed.images for r in out.reports if r.claimed)
    if moved:
        out.notes.append(f"{moved} image{'s' * (moved != 1)} moved from the trap "
                         f"'{printable(_claimed_from(out))}' to their site's trap, with their "
                         "results.")
    _scan_rest(db, plan, out, scan)
    return out


def _claimed_from(out: TrapsReport) -> str:
    return next(r.claimed.from_name for r in out.reports if r.claimed)


def _scan_rest(db: Database, plan: TrapPlan, out: TrapsReport, scan) -> None:
    """The folder's own trap: the images outside the site subfolders."""
    root = plan.folder
    stored = to_stored(str(root))
    with db.session() as s:
        parent = s.execute(select(Deployment.id, Deployment.name).where(
            Deployment.path == stored)).first()
    if parent is None and plan.layout.images_outside_sites == 0:
        return
    try:
        out.reports.append(scan(root, root.name))
    except UserInputError:
        if parent is not None:
            raise
        return  # nothing outside the sites after all (only hidden or unreadable folders)
    if parent is not None:
        with db.session() as s:
            left = s.execute(select(func.count()).select_from(Image).where(
                Image.deployment_id == parent.id)).scalar_one()
        if left == 0:
            remove_trap(db, parent.id)
            out.reports.pop()
            out.notes.append(f"The trap '{printable(parent.name)}' held only the images of its "
                             "site subfolders: it is removed (they are in their own traps now).")
