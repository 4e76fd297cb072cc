"""Plain values the results views get from :class:`ResultsService` (never ORM objects)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from trapgui.core.geometry import Box
from trapgui.core.types import HUMAN_DETECTOR

# sort keys the detections table offers; each maps to one column of the query
SORT_KEYS = ("id", "night", "time", "image", "score", "binary", "label", "rank", "label_score")

UNCLASSIFIED = "(not classified)"  # species summary bucket: no label above the threshold
MOTH_LABEL = "moth"  # the binary classifiers' positive class (see the model catalogue)


@dataclass(frozen=True, slots=True)
class DetectionQuery:
    """What the detections table shows: a selection, filters and one sort column.

    ``night_ids`` empty means every night of ``deployment_id`` (or of every trap when that is
    None too). ``min_score`` is the detection threshold; a label filter only counts
    classifications whose score reaches ``min_label_score`` (the classification threshold).
    """

    deployment_id: int | None = None
    night_ids: tuple[int, ...] = ()
    min_score: float = 0.0
    min_label_score: float = 0.0
    label: str | None = None  # exact top label (e.g. from the species summary)
    label_contains: str | None = None  # case-insensitive substring typed by the user
    rank: str | None = None
    sort: str = "id"
    descending: bool = False

    def __post_init__(self):
        if self.sort not in SORT_KEYS:
            raise ValueError(f"unknown sort key {self.sort!r}; expected one of {SORT_KEYS}")


@dataclass(frozen=True, slots=True)
class DetectionRow:
    """One row of the detections table."""

    id: int
    image_id: int
    night_id: int | None
    night_date: dt.date | None
    captured_at: dt.datetime | None
    image_path: str  # relative to the trap folder
    score: float
    binary_label: str | None
    binary_score: float | None
    top_label: str | None
    top_score: float | None
    top_rank: str | None

    def sort_value(self, sort: str):
        """The value of this row's sort column (the keyset of the next page starts after it)."""
        return {
            "id": self.id,
            "night": self.night_date,
            "time": self.captured_at,
            "image": self.image_path,
            "score": self.score,
            "binary": self.binary_score,
            "label": self.top_label,
            "rank": self.top_rank,
            "label_score": self.top_score,
        }[sort]


@dataclass(frozen=True, slots=True)
class ClassificationInfo:
    model: str
    rank: str
    label: str
    score: float
    top_labels: tuple[str, ...] = ()
    top_scores: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class BoxInfo:
    """One detection as the image viewer draws it (box in original-image pixels)."""

    detection_id: int
    box: Box
    score: float
    detector: str
    binary_label: str | None
    binary_score: float | None
    top_label: str | None
    top_score: float | None
    top_rank: str | None
    classifications: tuple[ClassificationInfo, ...] = ()
    occurrence_id: int | None = None
    deleted: bool = False  # a person rejected its occurrence: not an insect, counted nowhere
    drawn_by: str | None = None  # a person's box (detector "human"): who drew it

    @property
    def is_human(self) -> bool:
        return self.detector == HUMAN_DETECTOR

    @property
    def is_moth(self) -> bool | None:
        """True/False from the binary classifier; None when no binary classifier ran."""
        if self.binary_label is None:
            return None
        return self.binary_label == MOTH_LABEL


@dataclass(frozen=True, slots=True)
class ImageDetails:
    """An image with everything the viewer shows about it."""

    image_id: int
    path: str  # absolute path on disk
    rel_path: str
    deployment_id: int
    deployment_name: str
    night_id: int | None
    night_date: dt.date | None
    captured_at: dt.datetime | None
    width: int | None
    height: int | None
    state: str  # core.types.ImageState value
    error: str | None
    index_in_night: int  # 0-based position in its night (or the undated group)
    night_size: int
    boxes: tuple[BoxInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeciesCount:
    """One label's count in the species summary, with its best detection for a thumbnail."""

    label: str
    rank: str | None
    total: int
    per_night: dict[int, int] = field(default_factory=dict)  # night id -> count
    best_detection_id: int | None = None
    best_image_id: int | None = None
    best_image_path: str | None = None  # absolute
    best_box: Box | None = None
    best_score: float | None = None


@dataclass(frozen=True, slots=True)
class NightInfo:
    id: int
    deployment_id: int
    date: dt.date

    @property
    def title(self) -> str:
        return self.date.isoformat()
