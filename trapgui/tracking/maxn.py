"""MaxN: the most individuals of one taxon seen together in one image (a lower bound of the
night's abundance that needs no tracking, reported beside the occurrence counts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from trapgui.tracking.types import NightTracks


@dataclass(frozen=True, slots=True)
class MaxN:
    count: int
    image_id: int  # the first image (lowest id among equals) where the count is reached


def max_n(rows: Iterable[tuple[int, int, str | None]]) -> dict[str | None, MaxN]:
    """rows: (image id, occurrence key, taxon label or None). Each occurrence counts once
    per image it has a detection in. Returns taxon -> MaxN; None collects unlabelled ones."""
    per_image: dict[int, Counter] = {}
    seen: set[tuple[int, int]] = set()
    for image_id, occurrence, label in rows:
        if (image_id, occurrence) in seen:
            continue
        seen.add((image_id, occurrence))
        per_image.setdefault(image_id, Counter())[label] += 1
    best: dict[str | None, MaxN] = {}
    for image_id in sorted(per_image):
        for label, count in per_image[image_id].items():
            if label not in best or count > best[label].count:
                best[label] = MaxN(count, image_id)
    return best


def night_max_n(tracks: NightTracks, min_label_score: float = 0.0,
                include_fixtures: bool = False) -> dict[str | None, MaxN]:
    """MaxN per occurrence label of a tracked night. Occurrences whose label score is below
    ``min_label_score`` count under None, as in the counts; fixtures are left out."""
    rows = []
    for occ in tracks.occurrences:
        if occ.fixture and not include_fixtures:
            continue
        label = occ.label if occ.label_score is not None and occ.label_score >= min_label_score else None
        rows.extend((image_id, occ.key, label) for image_id in occ.image_ids)
    return max_n(rows)
