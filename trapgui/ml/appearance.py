"""Appearance embeddings for tracking, computed on the device from crops the engine cuts anyway.

Two sources, one format (L2-normalised float16 rows, stored as ``detections.embedding``):

- ``appearance_descriptors(crops)``: a cheap colour/texture descriptor (128 values) for when
  no classifier is installed. Crops: a tensor (N, 3, S, S) of any S, either uint8 (0..255),
  float in [0, 1], or float normalised with a classifier's ``mean``/``std`` (pass them, and
  they are undone). Internally resized to 64 x 64, so crops of any size give comparable
  vectors. Illumination-robust: colours are taken relative to the sheet around the insect
  (the median of the crop's border), so a brighter or dimmer exposure barely changes them.
- ``FeatureClassifier``: the classifier forward that already runs also returns its
  penultimate features (the input of its last linear layer, captured with a forward
  pre-hook, so the logits are those of the normal forward), reduced by a fixed, seeded
  random projection (``RandomProjection``, 2048 -> 128 for a ResNet-50).

``crop_sharpness(crops)`` gives a per-crop sharpness for choosing an occurrence's best crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DESCRIPTOR_SIDE = 64
DESCRIPTOR_DIM = 128
EPS = 1e-6

# block -> weight in the final vector (each block is L2-normalised first)
BLOCK_WEIGHTS = {"luminance": 1.0, "chroma": 1.0, "rings": 0.7, "gradient": 0.5,
                 "orientation": 0.5, "radial": 0.7}


# ---- the cheap descriptor --------------------------------------------------------------------

def _as_unit(crops: torch.Tensor, mean: Sequence[float] | None,
             std: Sequence[float] | None) -> torch.Tensor:
    if crops.dim() != 4 or crops.shape[1] != 3:
        raise ValueError(f"crops must be (N, 3, S, S), got {tuple(crops.shape)}")
    if crops.dtype == torch.uint8:
        x = crops.float() / 255.0
    else:
        x = crops.float()
        if mean is not None and std is not None:
            m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = x * s + m
    return x.clamp(0.0, 1.0)


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    shrinking = x.shape[-1] > side or x.shape[-2] > side
    return F.interpolate(x, size=(side, side), mode="area" if shrinking else "bilinear",
                         **({} if shrinking else {"align_corners": False}))


def _soft_hist(values: torch.Tensor, weights: torch.Tensor, lo: float, hi: float,
               bins: int) -> torch.Tensor:
    """(N, P) values -> (N, bins) histograms with linear interpolation between bin centres
    (a value near a bin edge splits its weight), so small changes move weight gradually."""
    n = values.shape[0]
    pos = ((values - lo) / (hi - lo) * bins - 0.5).clamp(0.0, bins - 1.0)
    b0 = pos.floor().long().clamp(max=bins - 1)
    frac = pos - b0.float()
    b1 = (b0 + 1).clamp(max=bins - 1)
    rows = torch.arange(n, device=values.device).view(n, 1) * bins
    out = torch.zeros(n * bins, device=values.device, dtype=torch.float32)
    out.index_add_(0, (rows + b0).reshape(-1), (weights * (1 - frac)).reshape(-1))
    out.index_add_(0, (rows + b1).reshape(-1), (weights * frac).reshape(-1))
    return out.view(n, bins)


def _soft_hist2d(u: torch.Tensor, v: torch.Tensor, weights: torch.Tensor,
                 ulim: tuple[float, float], vlim: tuple[float, float], bins: int) -> torch.Tensor:
    hu = _soft_weights(u, *ulim, bins)
    hv = _soft_weights(v, *vlim, bins)
    n = u.shape[0]
    out = torch.zeros(n * bins * bins, device=u.device, dtype=torch.float32)
    rows = torch.arange(n, device=u.device).view(n, 1) * bins * bins
    for bu, wu in hu:
        for bv, wv in hv:
            out.index_add_(0, (rows + bu * bins + bv).reshape(-1), (weights * wu * wv).reshape(-1))
    return out.view(n, bins * bins)


def _soft_weights(values, lo, hi, bins):
    pos = ((values - lo) / (hi - lo) * bins - 0.5).clamp(0.0, bins - 1.0)
    b0 = pos.floor().long().clamp(max=bins - 1)
    frac = pos - b0.float()
    return [(b0, 1 - frac), ((b0 + 1).clamp(max=bins - 1), frac)]


def _window(side: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A centred Gaussian window (the insect is in the middle of its padded box) and each
    pixel's distance from the centre in half-sides."""
    c = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    r = torch.sqrt(xx ** 2 + yy ** 2)
    return torch.exp(-0.5 * (r / 0.6) ** 2), r


def _gradients(lum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = F.pad(lum[:, :, :, 2:] - lum[:, :, :, :-2], (1, 1, 0, 0), mode="replicate") * 0.5
    gy = F.pad(lum[:, :, 2:, :] - lum[:, :, :-2, :], (0, 0, 1, 1), mode="replicate") * 0.5
    return torch.sqrt(gx ** 2 + gy ** 2 + 1e-12), torch.atan2(gy, gx)


def _block(x: torch.Tensor, name: str, hellinger: bool = True) -> torch.Tensor:
    x = x.clamp_min(0.0)
    if hellinger:
        x = torch.sqrt(x)
    return F.normalize(x, dim=1, eps=EPS) * BLOCK_WEIGHTS[name]


@torch.inference_mode()
def appearance_descriptors(crops: torch.Tensor, mean: Sequence[float] | None = None,
                           std: Sequence[float] | None = None) -> torch.Tensor:
    """(N, 128) float16, L2-normalised rows, on the crops' device. See the module doc."""
    n = crops.shape[0]
    if n == 0:
        return torch.zeros((0, DESCRIPTOR_DIM), dtype=torch.float16, device=crops.device)
    x = _resize(_as_unit(crops, mean, std), DESCRIPTOR_SIDE)
    side = DESCRIPTOR_SIDE
    border = torch.cat([x[:, :, :3, :].reshape(n, 3, -1), x[:, :, -3:, :].reshape(n, 3, -1),
                        x[:, :, :, :3].reshape(n, 3, -1), x[:, :, :, -3:].reshape(n, 3, -1)], dim=2)
    sheet = border.median(dim=2).values.clamp_min(0.05).view(n, 3, 1, 1)
    refl = (x / sheet).clamp(0.0, 1.5)  # reflectance relative to the sheet around it
    dark = (1.0 - refl).abs().mean(dim=1)  # (N, S, S): how much a pixel differs from sheet
    window, radius = _window(side, x.device)
    fg = (dark / 0.12).clamp(0.0, 1.0) * window  # soft insect mask, centre-weighted
    fg_flat = fg.reshape(n, -1) + EPS
    lum = refl.mean(dim=1)
    total = refl.sum(dim=1) + EPS
    c1 = (refl[:, 0] - refl[:, 1]) / total
    c2 = (refl[:, 0] + refl[:, 1] - 2 * refl[:, 2]) / total
    luminance = _soft_hist(lum.reshape(n, -1), fg_flat, 0.0, 1.2, 16)
    chroma = _soft_hist2d(c1.reshape(n, -1), c2.reshape(n, -1), fg_flat, (-0.25, 0.25), (-0.3, 0.6), 6)
    # luminance histograms of three rings (centre, middle, outside): where the dark and
    # pale parts lie, without depending on which way the insect faces
    ring3 = (radius.clamp(max=0.999) * 3).long().reshape(1, -1).expand(n, -1)
    rings = _soft_hist((lum.reshape(n, -1) + ring3 * 1.2), fg_flat, 0.0, 3.6, 48)
    magnitude, angle = _gradients(lum[:, None])
    magnitude, angle = magnitude[:, 0], angle[:, 0]
    wmag = (magnitude * window).reshape(n, -1)
    gradient = _soft_hist(torch.log10(magnitude.reshape(n, -1) + 1e-3), window.reshape(1, -1).expand(n, -1),
                          -3.0, 0.0, 8)
    orientation = _soft_hist(torch.remainder(angle, math.pi).reshape(n, -1), wmag, 0.0, math.pi, 12)
    # turned so the strongest direction comes first: the insect may face any way
    strongest = orientation.argmax(dim=1, keepdim=True)
    turn = (torch.arange(12, device=x.device).view(1, 12) + strongest) % 12
    orientation = orientation.gather(1, turn)
    ring = (radius.clamp(max=0.999) * 8).long().reshape(-1)  # 8 rings out to the inscribed circle
    dark_flat = (1.0 - lum).clamp_min(0.0).reshape(n, -1)
    radial = torch.zeros((n, 8), device=x.device)
    radial.index_add_(1, ring, dark_flat)
    radial = radial / torch.bincount(ring, minlength=8).clamp_min(1).float()
    out = torch.cat([
        _block(luminance, "luminance"), _block(chroma, "chroma"),
        _block(rings, "rings"), _block(gradient, "gradient"),
        _block(orientation, "orientation"), _block(radial, "radial", hellinger=False)], dim=1)
    return F.normalize(out, dim=1, eps=EPS).to(torch.float16)


@torch.inference_mode()
def crop_sharpness(crops: torch.Tensor, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None) -> torch.Tensor:
    """(N,) float32: mean squared Laplacian of the luminance, centre-weighted. Only its
    ratio between crops of one insect matters (the best crop is the sharpest of similar
    ones), so it is not normalised further."""
    if crops.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float32, device=crops.device)
    lum = _as_unit(crops, mean, std).mean(dim=1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
                          device=lum.device).view(1, 1, 3, 3)
    lap = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), kernel)[:, 0]
    window, _ = _window(lum.shape[-1], lum.device) if lum.shape[-1] == lum.shape[-2] else (None, None)
    if window is None:
        return (lap ** 2).mean(dim=(1, 2))
    return ((lap ** 2) * window).sum(dim=(1, 2)) / window.sum()


# ---- features from the classifier forward ------------------------------------------------

def classifier_head(model: nn.Module) -> nn.Linear:
    """The last linear layer of a catalogue classifier: torchvision ResNet ``fc``, the Turing
    ResNet-50 ``classifier``, a timm model's ``get_classifier()``."""
    head = None
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
    elif isinstance(getattr(model, "classifier", None), nn.Linear):
        head = model.classifier
    elif isinstance(getattr(model, "fc", None), nn.Linear):
        head = model.fc
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{type(model).__name__}: no final linear layer to take features from")
    return head


class RandomProjection:
    """A fixed random projection (in_dim -> out_dim, entries +-1/sqrt(out_dim)) that keeps
    cosine similarities approximately (Johnson-Lindenstrauss). The signs come from the raw
    bits of NumPy's PCG64 for ``seed``, which NumPy keeps stable across versions and
    platforms, so stored embeddings stay comparable after upgrades."""

    def __init__(self, in_dim: int, out_dim: int = DESCRIPTOR_DIM, seed: int = 0):
        self.in_dim, self.out_dim, self.seed = int(in_dim), int(out_dim), int(seed)
        bits = np.random.PCG64(seed).random_raw((self.in_dim * self.out_dim + 63) // 64)
        signs = np.unpackbits(bits.astype("<u8").view(np.uint8))[: self.in_dim * self.out_dim]
        matrix = (signs.astype(np.float32) * 2 - 1) / math.sqrt(self.out_dim)
        self.matrix = torch.from_numpy(matrix.reshape(self.in_dim, self.out_dim))
        self._on: dict[torch.device, torch.Tensor] = {}

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim) float16, L2-normalised rows."""
        m = self._on.get(features.device)
        if m is None:
            m = self._on[features.device] = self.matrix.to(features.device)
        projected = features.float().reshape(features.shape[0], -1) @ m
        return F.normalize(projected, dim=1, eps=EPS).to(torch.float16)


class FeatureClassifier:
    """Wraps a classifier network: ``forward(x) -> (logits, features)`` from ONE forward
    pass. The features are the input of the network's final linear layer, caught by a
    forward pre-hook while the normal forward runs, so the logits are exactly those of
    ``model(x)``. ``embed(features)`` projects them to stored embeddings."""

    def __init__(self, model: nn.Module, out_dim: int = DESCRIPTOR_DIM, seed: int = 0):
        self.model = model
        self.head = classifier_head(model)
        self.feature_dim = int(self.head.in_features)
        self.projection = RandomProjection(self.feature_dim, out_dim, seed)
        self._caught: torch.Tensor | None = None
        self._hook = self.head.register_forward_pre_hook(self._catch)

    def _catch(self, _module, inputs) -> None:
        self._caught = inputs[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._caught = None
        logits = self.model(x)
        features, self._caught = self._caught, None
        if features is None:
            raise RuntimeError(f"{type(self.model).__name__}'s forward did not use its final linear layer")
        return logits, features.reshape(features.shape[0], -1)

    __call__ = forward

    def take_features(self) -> torch.Tensor:
        """The features of the wrapped network's last forward, however it was called
        (``model(x)`` or a wrapper's own ``predict``): ``(N, feature_dim)``; cleared once taken."""
        features, self._caught = self._caught, None
        if features is None:
            raise RuntimeError(f"{type(self.model).__name__}'s forward did not use its final linear layer")
        return features.reshape(features.shape[0], -1)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def close(self) -> None:
        """Take the hook off the network (it then runs exactly as before)."""
        self._hook.remove()
