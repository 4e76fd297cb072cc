"""Every setting of the tracker in one frozen dataclass (the user settings hold them as a group).

Distances are in *box sizes* (``sqrt(width * height)``, the geometric mean of the two boxes'
sizes), so one set of values works at any image resolution and for insects of any size.
Appearance distances are in units of the night's *reference distance*: the median cosine
distance between two different detections of the same image (see docs/tracking.md), so
the same values work for the cheap colour/texture descriptor and for a classifier's
features. The cost function that these settings enter is documented in docs/tracking.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from trapgui.core.errors import UserInputError


@dataclass(frozen=True, slots=True)
class TrackingParams:
    # ---- linking consecutive images -------------------------------------------------------
    # A track may skip at most this many images without a detection (a missed detection, an
    # insect hidden by another) and still be continued...
    max_missed_images: int = 2
    # ... and never across more than this time gap between two of its detections.
    max_gap_s: float = 1800.0
    # Gates: pairs beyond any of these are never linked, whatever the rest of the cost.
    max_move: float = 3.0  # centre distance, in box sizes
    max_size_ratio: float = 2.0  # larger box size / smaller box size
    max_appearance: float = 1.0  # appearance distance, in reference distances
    # Weights of the cost terms (each term lies in [0, 1]; see docs/tracking.md).
    weight_overlap: float = 1.0  # 1 - IoU
    weight_move: float = 1.0  # centre distance / max_move
    weight_size: float = 0.5  # |log size ratio| / log max_size_ratio
    weight_appearance: float = 2.0  # appearance distance / max_appearance
    weight_time: float = 0.3  # time gap / max_gap_s
    # A link is made only when its cost is below this (the value of not linking).
    max_cost: float = 2.4
    # Appearance term used when one of the two detections has no embedding.
    missing_appearance: float = 0.6
    # Track appearance = running mean of its embeddings; weight of the newest one.
    appearance_update: float = 0.5

    # ---- re-linking tracks that ended (flew off and came back, several missed images) ----
    relink: bool = True
    relink_max_gap_s: float = 4 * 3600.0
    relink_max_move: float = 1.0
    relink_max_size_ratio: float = 1.5
    relink_max_appearance: float = 0.5
    relink_max_cost: float = 3.0
    # Embeddings averaged at each end of a track for the comparison.
    relink_window: int = 3

    # ---- fixtures (screws, stains, labels: same place in nearly every image, many nights) -
    fixture_min_presence: float = 0.8  # fraction of the night's images with a detection
    fixture_min_images: int = 3
    fixture_max_motion: float = 0.25  # box sizes from the median centre (90 % of detections)
    # A fixture is at that place on at least this many nights (this one included)...
    fixture_min_nights: int = 2
    # ... and on at least this fraction of the trap's nights (those with any candidate): two
    # moths that happened to rest all night at the same spot on two of many nights are not a
    # fixture, a screw is there on nearly all of them
    fixture_min_night_fraction: float = 0.25
    # "same place": median boxes' centres at most this far apart, per axis in units of the
    # boxes' mean width / height (in relative image coordinates across nights); IoU would be
    # too strict for a small rivet when the camera moved by a pixel or two
    fixture_max_offset: float = 0.5
    fixture_max_size_ratio: float = 1.5
    fixture_max_appearance: float = 1.0  # between the nights' mean embeddings, when present

    # ---- summaries -------------------------------------------------------------------------
    # The occurrence's label comes from the most specific rank whose results cover at least
    # this fraction of its detections (species runs only on crops the binary model passes).
    label_min_support: float = 0.5
    # Best detection: boxes within this fraction of the image side of an edge are "cut".
    edge_margin: float = 0.005

    # ---- pinned (human-reviewed) occurrences -----------------------------------------------
    # Machine tracks may be appended before/after a pinned occurrence (never inside its
    # span), with the strict re-link gates; the added detections are reported.
    extend_pinned: bool = True

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if not isinstance(value, (int, float)) or value != value:  # NaN
                problems.append(f"{f.name} must be a number")
            elif value < 0:
                problems.append(f"{f.name} must not be negative")
        for name in ("max_size_ratio", "relink_max_size_ratio", "fixture_max_size_ratio"):
            if getattr(self, name) <= 1.0:
                problems.append(f"{name} must be above 1")
        for name in ("max_move", "max_appearance", "max_gap_s", "max_cost"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be above 0")
        for name in ("fixture_min_presence", "fixture_min_night_fraction", "label_min_support",
                     "appearance_update"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must lie between 0 and 1")
        if self.relink_window < 1 or self.fixture_min_nights < 1:
            problems.append("relink_window and fixture_min_nights must be at least 1")
        if problems:
            raise UserInputError("Invalid tracking settings: " + "; ".join(problems) + ".")

    # settings round trip (config.Settings stores plain JSON)
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "TrackingParams":
        """Known keys only (a settings file written by a newer version may have more)."""
        known = {f.name for f in fields(cls)}
        return replace(cls(), **{k: v for k, v in (values or {}).items() if k in known})
