"""A person's review of occurrences (issue 14): the typed facade over ``db.review_store``
(decisions) and ``db.review_queries`` (reads) for the window and ``trapgui review``. Every
method blocks on SQLite: the window calls them through its job runner. Results are plain
frozen dataclasses.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from trapgui.core.errors import TrapguiError, UserInputError
from trapgui.core.insect_orders import INSECT_ORDERS, OTHER_ARTHROPOD_ORDERS
from trapgui.db import review_queries, review_store
from trapgui.db.review_carry import CarryCheck
from trapgui.db.review_queries import REJECTED, ReviewRow
from trapgui.db.review_store import ReviewOutcome

log = logging.getLogger(__name__)

NOT_AN_INSECT = "(not an insect)"


@dataclass(frozen=True, slots=True)
class TaxonChoice:
    """One entry of the relabel picker."""

    label: str
    rank: str | None
    source: str  # "model" | "order" | "morphospecies" | "catalogue"

    @property
    def text(self) -> str:
        return f"{self.label} ({self.rank})" if self.rank else self.label


@dataclass(frozen=True, slots=True)
class TaxonAgreement:
    machine_label: str  # what the machine said when the person decided
    reviewed: int
    confirmed: int
    changed: int  # relabelled
    rejected: int  # not an insect

    @property
    def agreement(self) -> float:
        return self.confirmed / self.reviewed if self.reviewed else 0.0


@dataclass(frozen=True, slots=True)
class Agreement:
    per_taxon: tuple[TaxonAgreement, ...]
    confusion: tuple[tuple[str, str, int], ...]  # (machine label, person's label, occurrences)
    overall: TaxonAgreement

    def csv_rows(self) -> list[list]:
        """The agreement table as CSV rows: per taxon, overall, then the confusion table."""
        rows: list[list] = [["section", "machine_label", "human_label", "reviewed", "confirmed",
                             "changed", "rejected", "agreement"]]
        for t in (*self.per_taxon, self.overall):
            rows.append(["taxon" if t is not self.overall else "overall", t.machine_label, "",
                         t.reviewed, t.confirmed, t.changed, t.rejected, f"{t.agreement:.4f}"])
        for machine, human, n in self.confusion:
            rows.append(["confusion", machine, human, n, "", "", "", ""])
        return rows


class ReviewService:
    def __init__(self, services):
        self._services = services

    @property
    def _db(self):
        return self._services.db

    def reviewer(self, name: str | None = None) -> str:
        """Who is reviewing: ``name``, else the Settings' reviewer name, else the login name."""
        for candidate in (name, self._services.settings.reviewer_name):
            if candidate and candidate.strip():
                return " ".join(candidate.split())
        try:
            return getpass.getuser()
        except Exception:  # noqa: BLE001 - no login name (a container): say so
            return "unknown reviewer"

    # ---- reads ----------------------------------------------------------------------------
    def night_rows(self, pipeline_id: int, night_id: int, *,
                   unreviewed_only: bool = False) -> list[ReviewRow]:
        return review_queries.review_rows(self._db, pipeline_id, night_id,
                                        unreviewed_only=unreviewed_only)

    def rows(self, pipeline_id: int, night_id: int,
             occurrence_ids: Sequence[int]) -> list[ReviewRow]:
        """Fresh rows of the occurrences an action touched (the rest of the grid stays)."""
        out: list[ReviewRow] = []
        ids = sorted(set(occurrence_ids))
        for i in range(0, len(ids), 900):
            out += review_queries.review_rows(self._db, pipeline_id, night_id,
                                            occurrence_ids=ids[i:i + 900])
        return out

    def night_version(self, pipeline_id: int, night_id: int) -> tuple:
        """A cheap fingerprint of the night's occurrences: it changes whenever one is added,
        removed or edited (the window reads the night again only then)."""
        return review_queries.night_version(self._db, pipeline_id, night_id)

    def similarity_order(self, pipeline_id: int, night_id: int) -> list[int]:
        """The night's occurrences with embeddings, look-alikes side by side (the mean of each
        one's stored detection embeddings, hierarchical clustering's leaf order). Occurrences
        without an embedding are not listed. Seconds for a large night: call it off the GUI
        thread."""
        from trapgui.tracking.similarity_order import mean_embeddings, similarity_order

        ids, means = mean_embeddings(review_queries.occurrence_embeddings(self._db, pipeline_id,
                                                                          night_id))
        return similarity_order(ids, means)

    def image_boxes(self, image_id: int, pipeline_id: int) -> list[tuple]:
        """(detection, occurrence, (x1, y1, x2, y2)) of the model configuration's detections on
        the image."""
        return review_queries.image_boxes(self._db, image_id, pipeline_id)

    def default_pipeline(self, night_id: int) -> int | None:
        """The model configuration that processed most of the night's images (None: none)."""
        from trapgui.db.export_queries import ExportScope, pipelines_in_scope

        choices = pipelines_in_scope(self._db, ExportScope.of(None, [night_id]))
        return choices[0].id if choices else None

    def image_pipeline(self, image_id: int) -> int:
        """The model configuration that processed the image (the most images of its night)."""
        from trapgui.db.export_queries import ExportScope, pipelines_in_scope

        night = review_queries.image_night(self._db, image_id)
        choices = pipelines_in_scope(self._db, ExportScope.of(None, [night]))
        if not choices:
            raise UserInputError(f"Image {image_id} is not processed yet: process it first.")
        return choices[0].id

    def occurrence_scope(self, occurrence_id: int) -> tuple[int, int]:
        return review_queries.occurrence_scope(self._db, occurrence_id)

    def taxon_choices(self, pipeline_id: int | None = None) -> list[TaxonChoice]:
        """What the relabel picker offers: the installed classifiers' labels, insect orders,
        the labels the machine gave in the catalogue, and the user's morphospecies."""
        seen: dict[str, TaxonChoice] = {}

        def add(label, rank, source):
            if label and label not in seen:
                seen[label] = TaxonChoice(label, rank, source)

        for name, rank in review_queries.morphospecies(self._db):
            add(name, rank, "morphospecies")
        for label in self._model_labels():
            add(label, "species", "model")
        for label in (*INSECT_ORDERS, *OTHER_ARTHROPOD_ORDERS):
            add(label, "order", "order")
        for label, rank in review_queries.machine_labels(self._db, pipeline_id).items():
            if rank != "binary":
                add(label, rank, "catalogue")
        return sorted(seen.values(), key=lambda c: c.label.lower())

    def _model_labels(self) -> list[str]:
        key = self._services.settings.species_classifier
        if not key:
            return []
        try:
            return list(self._services.models.store.labels(key))
        except (TrapguiError, OSError, KeyError, ValueError) as exc:
            log.info("No labels of %s for the picker: %s", key, exc)
            return []

    def known_ranks(self, pipeline_id: int | None = None) -> dict[str, str | None]:
        return {c.label: c.rank for c in self.taxon_choices(pipeline_id)
                if c.source != "morphospecies"}

    def frame_detections(self, occurrence_id: int) -> list[int]:
        return review_queries.frame_detections(self._db, occurrence_id)

    def needs_check(self, pipeline_id: int,
                    night_ids: Sequence[int] | None = None) -> list[CarryCheck]:
        """Decisions of the nights' other model configurations that could not be carried
        one-to-one onto this one's occurrences and that a person has not settled here yet."""
        return review_queries.carry_checks(self._db, pipeline_id, night_ids)

    def history(self, night_id: int | None = None, limit: int = 50) -> list[tuple]:
        return review_queries.history(self._db, night_id, limit)

    def agreement(self, pipeline_id: int | None,
                  night_ids: Sequence[int] | None = None) -> Agreement:
        """Per taxon (the machine's label when the person decided) and overall: reviewed,
        confirmed, changed, rejected; and what it was changed to."""
        per: dict[str, list[int]] = {}
        confusion: dict[tuple[str, str], int] = {}
        for machine, state, human, n in review_queries.agreement_rows(self._db, pipeline_id,
                                                                     night_ids):
            key = machine or "(no label)"
            counts = per.setdefault(key, [0, 0, 0, 0])
            counts[0] += n
            if state == REJECTED:
                counts[3] += n
                target = NOT_AN_INSECT
            elif human == machine:
                counts[1] += n
                target = human
            else:
                counts[2] += n
                target = human or "(no label)"
            confusion[(key, target)] = confusion.get((key, target), 0) + n
        taxa = tuple(TaxonAgreement(k, *v) for k, v in sorted(per.items()))
        total = [sum(t[i] for t in per.values()) for i in range(4)]
        return Agreement(taxa, tuple((m, h, n) for (m, h), n in sorted(confusion.items())),
                         TaxonAgreement("(all taxa)", *total))

    def write_agreement_csv(self, path, pipeline_id: int | None,
                            night_ids: Sequence[int] | None = None):
        """The agreement table as a CSV file (atomic; labels safe for spreadsheets)."""
        from trapgui.export.review_agreement import write_agreement_csv

        return write_agreement_csv(self.agreement(pipeline_id, night_ids).csv_rows(), path)

    # ---- decisions (each one transaction, one undo step) ----------------------------------
    def confirm(self, occurrence_ids: Sequence[int], by: str | None = None) -> ReviewOutcome:
        return review_store.confirm(self._db, occurrence_ids, self.reviewer(by))

    def relabel(self, occurrence_ids: Sequence[int], label: str, rank: str | None = None,
                by: str | None = None, pipeline_id: int | None = None) -> ReviewOutcome:
        return review_store.relabel(self._db, occurrence_ids, label, rank or None,
                                    self.reviewer(by), self.known_ranks(pipeline_id))

    def reject(self, occurrence_ids: Sequence[int], by: str | None = None) -> ReviewOutcome:
        return review_store.reject(self._db, occurrence_ids, self.reviewer(by))

    def mark_fixture(self, occurrence_ids: Sequence[int], fixture: bool = True,
                     by: str | None = None) -> ReviewOutcome:
        return review_store.mark_fixture(self._db, occurrence_ids, fixture, self.reviewer(by))

    def confirm_label_above(self, pipeline_id: int, night_id: int, label: str,
                            min_score: float, by: str | None = None) -> ReviewOutcome:
        if not 0.0 <= min_score <= 1.0:
            raise UserInputError("The score must be between 0 and 1.")
        return review_store.confirm_label_above(self._db, pipeline_id, night_id, label,
                                                min_score, self.reviewer(by))

    def merge(self, target_id: int, other_ids: Sequence[int],
              by: str | None = None) -> ReviewOutcome:
        return review_store.merge(self._db, target_id, other_ids, self.reviewer(by))

    def split(self, occurrence_id: int, *, at_frame: int | None = None,
              at_detection: int | None = None, by: str | None = None) -> ReviewOutcome:
        """Split at a frame (1 = the first detection of the occurrence) or a detection id."""
        if (at_frame is None) == (at_detection is None):
            raise UserInputError("Say where to split: a frame number or a detection id.")
        if at_frame is not None:
            frames = self.frame_detections(occurrence_id)
            if not 1 <= at_frame <= len(frames):
                raise UserInputError(f"Occurrence {occurrence_id} has frames 1 to {len(frames)}; "
                                     f"there is no frame {at_frame}.")
            at_detection = frames[at_frame - 1]
        return review_store.split(self._db, occurrence_id, at_detection, self.reviewer(by))

    def move_detection(self, detection_id: int, target_id: int,
                       by: str | None = None) -> ReviewOutcome:
        return review_store.move_detection(self._db, detection_id, target_id, self.reviewer(by))

    def add_box(self, image_id: int, pipeline_id: int, box: tuple[float, float, float, float],
                occurrence_id: int | None = None, by: str | None = None) -> ReviewOutcome:
        """A missed insect: a person's box becomes a detection (method "human")."""
        return review_store.add_box(self._db, image_id, pipeline_id, box, self.reviewer(by),
                                    occurrence_id)

    def delete_box(self, detection_id: int, by: str | None = None) -> ReviewOutcome:
        """A false box: counted nowhere from now on (undoable)."""
        return review_store.delete_box(self._db, detection_id, self.reviewer(by))

    def undo(self, night_id: int | None = None, action_id: int | None = None) -> ReviewOutcome:
        """Take back the latest action. Boxes that go back to an occurrence tracking has
        since rebuilt (a carried frame set undone after the night was tracked again) are
        tracked again at once, so they count where they belong."""
        outcome = review_store.undo(self._db, night_id=night_id, action_id=action_id)
        from trapgui.db.occurrence_store import pipelines_with_untracked
        from trapgui.pipeline.tracking_job import track_catalogue_nights

        for night in outcome.night_ids:
            for pipeline_id in pipelines_with_untracked(self._db, night):
                track_catalogue_nights(self._db, pipeline_id, [night],
                                       self._services.settings.tracking_params())
        return outcome
