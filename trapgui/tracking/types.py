"""What goes into the tracker and what comes out: plain dataclasses, no ORM, no torch.

Ranks are the strings of ``core.types.Rank`` ("binary", "order", "species"); other rank
names are accepted and rank below those three.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Labels = Mapping[str, Sequence[tuple[str, float]]]  # rank -> top-k (label, score), best first


@dataclass(frozen=True, slots=True)
class NightImage:
    """One image of the night. ``captured`` is the camera's local time (naive is fine)."""

    image_id: int
    captured: dt.datetime
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class NightDetection:
    """One detection. ``box`` is (x1, y1, x2, y2) in original-image pixels. ``embedding``:
    any fixed length (one length per night), need not be normalised; None = not available.
    ``sharpness``: optional crop sharpness (``ml.appearance.crop_sharpness``) for the best
    crop; None = not known."""

    detection_id: int
    image_id: int
    box: tuple[float, float, float, float]
    score: float
    labels: Labels = field(default_factory=dict)
    embedding: np.ndarray | None = None
    sharpness: float | None = None


@dataclass(frozen=True, slots=True)
class PinnedOccurrence:
    """A human-reviewed occurrence: its detections stay together, untouched. ``key`` is the
    caller's id for it (the occurrences row id). ``fixture``: the person's decision, if they
    made one (True counts as fixture evidence for other nights; False keeps it out)."""

    key: int
    detection_ids: tuple[int, ...]
    fixture: bool | None = None


@dataclass(frozen=True, slots=True)
class LabelVote:
    """The score-weighted vote of one rank. ``score`` is the winner's mean score over the
    detections that have a result of this rank; ``support`` the fraction of the
    occurrence's detections that have one."""

    rank: str
    label: str
    score: float
    support: float
    n: int  # detections with a result of this rank


@dataclass(frozen=True, slots=True)
class FixtureCandidate:
    """A track that sat still in nearly every image of its night: a fixture if other nights
    have one at the same place (``tracking.fixtures.flag_fixtures``). ``box`` is the median
    box in relative image coordinates (0..1)."""

    key: int  # occurrence key
    box: tuple[float, float, float, float]
    presence: float  # fraction of the night's images with a detection of it
    n_images: int  # images of the night
    embedding: np.ndarray | None = None  # mean, L2-normalised
    reference_distance: float | None = None  # the night's appearance unit (cosine distance)
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One individual. ``key`` is the detection id of its first detection: unique within the
    night, and the same after a re-run as long as that detection stays its first. A pinned
    occurrence also carries ``pinned_key``, the caller's own id for it."""

    key: int
    detection_ids: tuple[int, ...]  # capture order
    image_ids: tuple[int, ...]  # image of each detection
    first_image_id: int
    last_image_id: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    best_detection_id: int
    votes: Mapping[str, LabelVote]  # per rank
    label: str | None
    label_rank: str | None
    label_score: float | None
    pinned_key: int | None = None
    added_detection_ids: tuple[int, ...] = ()  # machine-added to a pinned occurrence
    fixture: bool = False
    fixture_reason: str | None = None

    @property
    def n_detections(self) -> int:
        return len(self.detection_ids)

    @property
    def pinned(self) -> bool:
        return self.pinned_key is not None


@dataclass(frozen=True, slots=True)
class TrackingStats:
    detections: int
    images: int
    links: int  # consecutive-image links made
    relinks: int  # tracks joined after they ended
    pinned_extended: int  # machine tracks appended to pinned occurrences
    reference_distance: float | None  # appearance unit used (None: no embeddings)
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class NightTracks:
    """The result for one night. ``occurrence_of`` maps every detection id to the index of
    its occurrence in ``occurrences``."""

    occurrences: tuple[Occurrence, ...]
    occurrence_of: Mapping[int, int]
    fixture_candidates: tuple[FixtureCandidate, ...]
    stats: TrackingStats

    def counted(self) -> tuple[Occurrence, ...]:
        """The occurrences that count as individuals (fixtures left out)."""
        return tuple(o for o in self.occurrences if not o.fixture)
