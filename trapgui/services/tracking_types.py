"""Plain results of the tracking service that the window imports (no SQLAlchemy here: the
GUI may import this module on its thread)."""

from __future__ import annotations

from dataclasses import dataclass, field

UNIDENTIFIED = "Not identified"  # individuals whose label is below the classification threshold


@dataclass(frozen=True, slots=True)
class TaxonIndividuals:
    """One taxon's row of the Species summary: individuals (``db.counts``) per night and in
    all, their detections, and the best crop of the taxon for a thumbnail."""

    label: str  # UNIDENTIFIED for individuals nobody identified
    rank: str | None
    individuals: int
    detections: int
    max_n: int  # most individuals of the taxon in one image, over the nights shown
    per_night: dict[int, int] = field(default_factory=dict)  # night id -> individuals
    human_identified: int = 0
    best_detection_id: int | None = None
    best_image_id: int | None = None
    best_image_path: str | None = None
    best_box: tuple[float, float, float, float] | None = None
    best_score: float | None = None

    @property
    def identified(self) -> bool:
        return self.label != UNIDENTIFIED
