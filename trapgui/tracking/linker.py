"""Stage 1: link the detections of each image to the tracks still open, image after image.

A track is open while it has missed at most ``max_missed_images`` images and its last
detection is at most ``max_gap_s`` old. For each image, candidate pairs (open track, new
detection) come from a KD-tree search around each track's last box, costs and gates from
``costs.link_costs``, and the one-to-one assignment from ``assignment.max_weight_matching``.
Unmatched detections start new tracks. Work per image is proportional to its candidate
pairs, never to the size of the night.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial import cKDTree

from trapgui.tracking.arrays import NightArrays
from trapgui.tracking.assignment import max_weight_matching
from trapgui.tracking.costs import Gates, appearance_distance, link_costs
from trapgui.tracking.params import TrackingParams


def link_consecutive(arr: NightArrays, p: TrackingParams, reference: float | None,
                     excluded: np.ndarray) -> tuple[np.ndarray, int]:
    """Track index of every detection (-1 for ``excluded`` ones: pinned detections) and the
    number of links made."""
    gates = Gates.consecutive(p)
    n = arr.n
    track_of = np.full(n, -1, dtype=np.int64)
    last_det = np.empty(n, dtype=np.int64)  # per track (at most n tracks)
    last_img = np.empty(n, dtype=np.int64)
    use_app = arr.embeddings is not None and reference is not None
    app = np.zeros_like(arr.embeddings) if use_app else None  # per-track running mean
    app_has = np.zeros(n, dtype=bool)
    n_tracks = 0
    open_tracks = np.zeros(0, dtype=np.int64)
    links = 0
    u = p.appearance_update
    for t in range(len(arr.images)):
        sl = arr.image_slice(t)
        dets = np.arange(sl.start, sl.stop)
        dets = dets[~excluded[dets]]
        if len(open_tracks):
            missed = t - last_img[open_tracks] - 1
            gap = arr.times[t] - arr.times[last_img[open_tracks]]
            open_tracks = open_tracks[(missed <= p.max_missed_images) & (gap <= p.max_gap_s)]
        matched_det = np.zeros(len(dets), dtype=bool)
        if len(open_tracks) and len(dets):
            rows, cols = _candidates(arr, gates, last_det[open_tracks], dets)
            if len(rows):
                tr = open_tracks[rows]
                a_idx, b_idx = last_det[tr], dets[cols]
                dist = None
                if use_app:
                    both = app_has[tr] & arr.has_embedding[b_idx]
                    dist = np.full(len(tr), np.nan)
                    if both.any():
                        dist[both] = appearance_distance(app[tr[both]], arr.embeddings[b_idx[both]],
                                                         reference)
                gap_s = arr.times[t] - arr.times[last_img[tr]]
                cost, ok = link_costs(p, gates, arr.boxes[a_idx], arr.boxes[b_idx], dist, gap_s)
                mr, mc = max_weight_matching(rows[ok], cols[ok], p.max_cost - cost[ok])
                if len(mr):
                    tracks = open_tracks[mr]
                    d = dets[mc]
                    track_of[d] = tracks
                    last_det[tracks] = d
                    last_img[tracks] = t
                    matched_det[mc] = True
                    links += len(mr)
                    if use_app:
                        _update_appearance(app, app_has, tracks, arr, d, u)
        new = dets[~matched_det]
        if len(new):
            ids = np.arange(n_tracks, n_tracks + len(new))
            n_tracks += len(new)
            track_of[new] = ids
            last_det[ids] = new
            last_img[ids] = t
            if use_app:
                has = arr.has_embedding[new]
                app[ids[has]] = arr.embeddings[new[has]]
                app_has[ids] = has
            open_tracks = np.concatenate([open_tracks, ids])
    return track_of, links


def _candidates(arr: NightArrays, gates: Gates, track_dets: np.ndarray,
                dets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row into track_dets, column into dets) of every pair within the search radius."""
    tree = cKDTree(arr.centres[dets])
    radius = gates.search_radius(arr.sizes[track_dets])
    found = tree.query_ball_point(arr.centres[track_dets], radius, return_sorted=True)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    cols = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=int(counts.sum()))
    rows = np.repeat(np.arange(len(track_dets)), counts)
    return rows, cols


def _update_appearance(app, app_has, tracks, arr, dets, u) -> None:
    has = arr.has_embedding[dets]
    both = tracks[has & app_has[tracks]]
    only_new = tracks[has & ~app_has[tracks]]
    if len(both):
        mixed = (1.0 - u) * app[both] + u * arr.embeddings[dets[has & app_has[tracks]]]
        norms = np.linalg.norm(mixed, axis=1, keepdims=True)
        app[both] = mixed / np.maximum(norms, 1e-12)
    if len(only_new):
        app[only_new] = arr.embeddings[dets[has & ~app_has[tracks]]]
        app_has[only_new] = True
