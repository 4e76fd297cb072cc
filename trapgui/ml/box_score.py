"""The built-in detector's confidence: a logistic model on per-region features.

The coefficients are fitted offline by benchmarks/fit_detector_score.py on the tuning split of
the hand-labelled photos and their synthetic hard negatives (benchmarks/detector_scoring.py
names the split), and pasted here; the fitting script prints this block. A score is then the
model's estimate of the probability that the box is an insect, so 0.5 means "as likely as not"
and a reliability table on held-out photos checks that it means that.
"""

from __future__ import annotations

import torch

from trapgui.ml.box_features import FEATURE_NAMES

# fmt: off
# --- fitted by benchmarks/fit_detector_score.py (do not edit by hand) ---
SCORE_FEATURES = ('log_margin', 'log_area', 'contrast', 'chroma_ratio', 'highlight', 'sharpness', 'texture', 'log_elongation', 'fill', 'box_fill', 'rectilinear', 'border', 'row', 'contained', 'log_minor', 'dominance')
SCORE_CLIP_LOW = (-0.687011, -11.5491, 0.0556754, 0, -0.18665, 0.230757, 0.219908, 0, 0.127818, 0.327558, 0.0128212, 0, 0, 0, 1.18356, 0.0112826)
SCORE_CLIP_HIGH = (2.26468, -4.7677, 0.738876, 0.93378, 0.0429769, 0.477537, 0.921599, 1.59779, 0.8, 1, 0.675936, 0.253906, 1, 0.257564, 4.61372, 1)
SCORE_MEAN = (0.318634, -9.04758, 0.280133, 0.255054, -0.0529912, 0.393283, 0.445474, 0.571696, 0.43996, 0.706228, 0.184495, 0.0999673, 0.0520362, 0.00676294, 2.37544, 0.819602)
SCORE_SCALE = (0.903533, 1.84739, 0.165718, 0.268927, 0.0549481, 0.0497231, 0.147216, 0.369946, 0.169333, 0.173314, 0.144102, 0.0745766, 0.2221, 0.0370496, 0.936254, 0.340384)
SCORE_WEIGHTS = (0.938896, -0.0473426, 1.50937, 1.39034, -0.774334, 0.0629228, 1.21479, -0.25933, -0.0623167, -0.659652, 0.208523, 0.370676, -0.253594, 0.16257, -0.706904, 1.26492)
SCORE_BIAS = 0.203343
# --- end of fitted block ---
# fmt: on


def insect_probability(values: torch.Tensor) -> torch.Tensor:
    """values: (K, len(FEATURE_NAMES)) from `box_features.region_features` -> (K,) in [0, 1]."""
    if values.shape[0] == 0:
        return values.new_zeros(0)
    columns = [FEATURE_NAMES.index(name) for name in SCORE_FEATURES]
    x = values[:, columns].double()
    # Measurements outside the range seen in fitting are held at its edge (1st/99th centile):
    # a logistic model must not extrapolate a straight line into the unknown.
    low = torch.tensor(SCORE_CLIP_LOW, dtype=torch.float64, device=values.device)
    high = torch.tensor(SCORE_CLIP_HIGH, dtype=torch.float64, device=values.device)
    x = torch.maximum(torch.minimum(x, high), low)
    mean = torch.tensor(SCORE_MEAN, dtype=torch.float64, device=values.device)
    scale = torch.tensor(SCORE_SCALE, dtype=torch.float64, device=values.device)
    weights = torch.tensor(SCORE_WEIGHTS, dtype=torch.float64, device=values.device)
    logit = ((x - mean) / scale) @ weights + SCORE_BIAS
    return torch.sigmoid(logit).float()
