"""Traps, nights and their counts for the GUI's tree and overview; scanning trap folders.

Every method blocks (SQLite queries): the GUI calls them through its job runner. The queries
are in :mod:`trapgui.db.catalogue_queries` (the CLI's ``nights`` uses the same one); results
are plain dataclasses, never ORM objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trapgui.core.errors import UserInputError
from trapgui.core.jobs import Emit, JobControl, Progress
from trapgui.core.types import Rank
from trapgui.db import catalogue_queries
from trapgui.db.catalogue_queries import NightRow


@dataclass(frozen=True, slots=True)
class NightIndividuals:
    """A night's individuals (tracked insects, fixtures left out) at the thresholds of its
    ``NightRow``: ``db.counts``, the numbers of ``trapgui nights`` and every export."""

    individuals: int = 0
    max_n: int = 0  # most individuals in one image
    taxa: int = 0  # distinct labels among them that reach the classification threshold


@dataclass(frozen=True, slots=True)
class DeploymentSummary:
    """A trap with its nights (``NightRow``: the counts, with the thresholds they used) and
    their individuals (night id -> ``NightIndividuals``; absent: none yet)."""

    id: int
    name: str
    path: str
    nights: tuple[NightRow, ...] = field(default_factory=tuple)
    individuals: dict[int, NightIndividuals] = field(default_factory=dict)
    tooltip: str = ""  # the trap's metadata (site, position, camera clock...)

    def total(self, attr: str) -> int:
        return sum(getattr(n, attr) for n in self.nights)

    def of_night(self, night_id: int | None) -> NightIndividuals:
        return self.individuals.get(night_id, NightIndividuals()) if night_id is not None \
            else NightIndividuals()

    @property
    def total_individuals(self) -> int:
        return sum(c.individuals for c in self.individuals.values())

    @property
    def thresholds(self) -> tuple[float, float] | None:
        """(detection, classification) the counts used; None without nights."""
        return (self.nights[0].min_score, self.nights[0].min_label_score) if self.nights else None

    @property
    def night_ids(self) -> list[int]:
        return [n.night_id for n in self.nights if n.night_id is not None]


class CatalogueService:
    def __init__(self, services):
        self._services = services

    @property
    def _db(self):
        return self._services.db

    # ---- reading ------------------------------------------------------------------------
    def current_pipeline_id(self) -> int | None:
        """The pipeline whose results the views show: the one the processing settings select
        if it exists, else the one used most recently."""
        try:
            wanted = self._services.processing.pipeline_key_for_settings()
        except Exception:  # noqa: BLE001 - settings unusable for processing: the latest then
            wanted = None
        return catalogue_queries.results_pipeline_id(self._db, wanted)

    def tree(self, pipeline_id: int | None = None) -> list[DeploymentSummary]:
        """Every trap with its nights and their counts at the settings' thresholds."""
        settings = self._services.settings
        if pipeline_id is None:
            pipeline_id = self.current_pipeline_id()
        # no pipeline has results yet (None): "any pipeline" counts nothing processed either
        rows = catalogue_queries.nights_table(
            self._db, pipeline_id=pipeline_id,
            min_score=settings.detection_threshold,
            min_label_score=settings.classification_threshold,
            counted_only=pipeline_id is not None)  # fixtures left out, as in db.counts
        by_dep: dict[int, list[NightRow]] = {}
        for row in rows:
            by_dep.setdefault(row.deployment_id, []).append(row)
        individuals = self._individuals(pipeline_id, settings.detection_threshold,
                                        settings.classification_threshold)
        tips = self._services.traps.tooltips()
        return [DeploymentSummary(d.id, d.name, d.path, tuple(by_dep.get(d.id, ())),
                                  individuals.get(d.id, {}), tips.get(d.id, d.path))
                for d in catalogue_queries.list_deployments(self._db)]

    def _individuals(self, pipeline_id: int | None, detection: float, label: float
                     ) -> dict[int, dict[int, NightIndividuals]]:
        """trap -> night -> its individuals, MaxN and taxa (``db.counts``, as the CLI)."""
        from trapgui.db.counts import count_individuals, count_individuals_per_night
        from trapgui.db.export_queries import ExportScope, Thresholds

        if pipeline_id is None:
            return {}
        thresholds, scope = Thresholds(detection, label), ExportScope.of()
        taxa: dict[tuple[int, int], int] = {}
        for c in count_individuals(self._db, scope, pipeline_id, thresholds):
            if c.label is not None and c.rank != Rank.BINARY.value:  # "moth" is no taxon
                taxa[(c.deployment_id, c.night_id)] = taxa.get((c.deployment_id, c.night_id), 0) + 1
        out: dict[int, dict[int, NightIndividuals]] = {}
        for (dep, night), n in count_individuals_per_night(self._db, scope, pipeline_id,
                                                           thresholds).items():
            out.setdefault(dep, {})[night] = NightIndividuals(n.individuals, n.max_n,
                                                              taxa.get((dep, night), 0))
        return out

    def hourly_activity(self, night_ids: list[int], pipeline_id: int | None = None
                        ) -> dict[int, list[int]]:
        """Detections above threshold per hour of each night (24 bins from the cut-off hour)."""
        settings = self._services.settings
        if pipeline_id is None:
            pipeline_id = self.current_pipeline_id()
        result = {n: [0] * 24 for n in night_ids}
        if pipeline_id is None or not night_ids:
            return result
        for night_id, hour, count in catalogue_queries.hourly_detections(
                self._db, night_ids, pipeline_id, settings.detection_threshold):
            result[night_id][(hour - settings.night_cutoff_hour) % 24] += count
        return result

    def image_ids(self, deployment_id: int | None = None, night_ids: list[int] | None = None,
                  include_undated: bool = False) -> list[int]:
        """Readable images of a trap or of some nights (what a processing run covers)."""
        return catalogue_queries.image_ids(self._db, deployment_id, night_ids, include_undated)

    def image_ids_for_files(self, files: list[str]) -> tuple[list[int], list[str]]:
        """Map image files chosen by the user to catalogue ids; returns (ids, not found)."""
        return catalogue_queries.image_ids_for_files(self._db, files)

    def deployment_for_path(self, folder: str) -> int | None:
        found = catalogue_queries.find_deployment(self._db, folder)
        return None if found is None else found.id

    # ---- folders ------------------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        return list(self._services.settings.recent_folders)

    def add_recent_folder(self, folder: str) -> None:
        self._services.settings.add_recent_folder(str(folder))
        self._services.save_settings()

    def trap_plan_job(self, folder: str, choice: str = "auto"):
        """A job that looks at ``folder``'s subfolders (directory listings only) and returns
        the ``scan.site_scan.TrapPlan`` scanning it with ``choice`` would follow: whether its
        subfolders are trap sites, and whether it is catalogued as one trap already."""
        path = Path(folder).expanduser()

        def job(emit: Emit, control: JobControl):
            from trapgui.scan.site_scan import plan_traps

            emit(Progress(0, None, unit="files", message=f"Looking into {path.name or path}"))
            return plan_traps(self._db, path, choice)

        return job

    @staticmethod
    def needs_trap_question(plan, remembered: str) -> bool:
        """Whether the window asks "one trap per subfolder or one for everything?" before
        scanning: when the folder holds two or more sites and no answer is remembered, and
        always before splitting a folder catalogued as one trap (never silently)."""
        if plan.layout is None or plan.already_split or not plan.layout.splits:
            return False
        if plan.already_one_trap:
            return remembered != "one"
        return remembered == "ask"

    def traps_to_regroup(self, hour: int | None = None) -> list[str]:
        """Names of the traps whose nights were made with another cut-off hour than ``hour``
        (default: the setting's)."""
        from trapgui.pipeline.night_regroup import pending_traps

        return pending_traps(self._db, self._hour(hour))

    def regroup_job(self, hour: int | None = None):
        """A job moving every trap to the cut-off ``hour`` (default: the setting's), keeping
        every result (``pipeline.night_regroup``). Returns a ``RegroupSummary`` (``describe()``
        is the sentence); Progress in "traps"."""
        from trapgui.pipeline.night_regroup import regroup_job

        return regroup_job(self._db, self._hour(hour),
                           params=self._services.settings.tracking_params())

    def _hour(self, hour: int | None) -> int:
        return self._services.settings.night_cutoff_hour if hour is None else hour

    def scan_job(self, folder: str, traps: str = "auto", layout=None):
        """A job that indexes a trap folder (incremental) and remembers it; ``traps`` is
        ``auto``, ``one`` or ``subfolders`` (``scan.site_scan``; ``layout`` the
        ``SiteLayout`` already found, to skip listing again). Returns the
        ``scan.site_scan.TrapsReport``: one ``ScanReport`` per trap made (``cancelled`` set
        when stopped early: what was read is kept). Emits Progress in "files", its message
        says the trap and the phase."""
        path = Path(folder).expanduser()

        def job(emit: Emit, control: JobControl):
            if not path.is_dir():
                raise UserInputError(f"{path} is not a folder.",
                                     hint="Drop or open the folder that holds the trap's images.")
            from trapgui.scan.site_scan import plan_traps, scan_traps

            def progress(name: str, phase: str, done: int, total: int) -> None:
                emit(Progress(done, total or None, unit="files",
                              message=f"Scanning {name}: {phase}"))

            plan = plan_traps(self._db, path, traps, layout=layout)
            report = scan_traps(self._db, plan,
                                cutoff_hour=self._services.settings.night_cutoff_hour,
                                progress=progress, cancel=lambda: control.cancelled)
            self.add_recent_folder(str(path.resolve()))
            return report

        return job
