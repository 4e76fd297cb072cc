"""Tracking: a night's detections -> individuals (occurrences). Pure Python + numpy + scipy.

Entry points (see docs/tracking.md):

- ``track_night(images, detections, params=None, pinned=()) -> NightTracks``
- ``flag_fixtures({night: candidates}, params, night_labels) -> {night: {occurrence key: reason}}``
  and ``apply_fixture_flags(tracks, flags)``; ``track_nights(nights, ...)`` does all three
  for several nights of one trap (job-shaped: ``emit``, ``control``).
- ``max_n(rows)`` / ``night_max_n(tracks)``; ``encode_embedding`` / ``decode_embedding``.
"""

from trapgui.tracking.embeddings import decode_embedding, encode_embedding
from trapgui.tracking.fixtures import flag_fixtures
from trapgui.tracking.maxn import MaxN, max_n, night_max_n
from trapgui.tracking.night import NightInput, apply_fixture_flags, track_night, track_nights
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.types import (FixtureCandidate, LabelVote, NightDetection, NightImage,
                                    NightTracks, Occurrence, PinnedOccurrence, TrackingStats)

__all__ = [
    "FixtureCandidate", "LabelVote", "MaxN", "NightDetection", "NightImage", "NightInput",
    "NightTracks", "Occurrence", "PinnedOccurrence", "TrackingParams", "TrackingStats",
    "apply_fixture_flags", "decode_embedding", "encode_embedding", "flag_fixtures", "max_n",
    "night_max_n", "track_night", "track_nights",
]
