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
SCORE_CLIP_LOW = (-0.687089, -11.2008, 0.055471, 0, -0.180028, 0.228277, 0.21902, 0.0179253, 0.127051, 0.316526, 0.0128065, 0, 0, 0, 1.18607, 0.0110802)
SCORE_CLIP_HIGH = (2.26569, -4.70165, 0.739998, 0.934459, 0.0446894, 0.474526, 0.927082, 1.60134, 0.768277, 1, 0.664635, 0.253906, 1, 0.262051, 4.61793, 1)
SCORE_MEAN = (0.389788, -8.84237, 0.283716, 0.272287, -0.0475445, 0.389502, 0.452613, 0.600998, 0.421161, 0.683901, 0.186136, 0.0995198, 0.0565111, 0.00739964, 2.46718, 0.812138)
SCORE_SCALE = (0.906069, 1.78453, 0.170348, 0.272994, 0.052015, 0.0497751, 0.150779, 0.366362, 0.160606, 0.162299, 0.142619, 0.0744155, 0.230906, 0.0389137, 0.919131, 0.344181)
SCORE_WEIGHTS = (0.792475, -0.0385185, 1.58521, 1.44467, -0.832836, 0.151675, 1.24785, -0.182136, 0.00287213, -0.431568, 0.201556, 0.410016, -0.229419, 0.170623, -0.584763, 1.30234)
SCORE_BIAS = 0.414943
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
