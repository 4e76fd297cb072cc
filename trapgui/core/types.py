"""Plain data passed between layers (engine results, progress). No ORM, no torch, no Qt."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from trapgui.core.geometry import Box


class ImageState(str, enum.Enum):
    """Catalogue state of an image file (independent of processing)."""

    OK = "ok"
    UNREADABLE = "unreadable"  # zero bytes, truncated, not an image, permission denied
    MISSING = "missing"  # was scanned once, no longer on disk (results are kept)


class TimeSource(str, enum.Enum):
    EXIF_ORIGINAL = "exif_datetime_original"
    EXIF_DATETIME = "exif_datetime"
    FILENAME = "filename"
    MTIME = "file_mtime"  # unreliable: copying files changes it
    NONE = "none"  # no time at all: the image goes to the "undated" group


class JobState(str, enum.Enum):
    """Processing state of one image for one pipeline configuration (the queue)."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"


class Rank(str, enum.Enum):
    BINARY = "binary"
    ORDER = "order"
    SPECIES = "species"


@dataclass(slots=True)
class ClassificationResult:
    model: str  # catalogue key
    rank: Rank
    label: str
    score: float
    top_labels: list[str] = field(default_factory=list)
    top_scores: list[float] = field(default_factory=list)


@dataclass(slots=True)
class DetectionResult:
    box: Box
    score: float
    detector: str  # catalogue key
    classifications: list[ClassificationResult] = field(default_factory=list)
    # appearance embedding for tracking (float16 little-endian bytes, see core.embedding_kind)
    embedding: bytes | None = None
    sharpness: float | None = None  # crop sharpness, to choose an occurrence's best crop


@dataclass(slots=True)
class ImageResult:
    """Everything the engine found in one image; ``error`` set means the image failed."""

    image_id: int
    detections: list[DetectionResult] = field(default_factory=list)
    error: str | None = None
    skipped_boxes: int = 0  # degenerate boxes dropped before classification

# the detector of a box a person drew: never deleted by re-processing, counted like any other
HUMAN_DETECTOR = "human"
