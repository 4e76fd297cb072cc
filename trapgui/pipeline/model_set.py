"""The models one device worker uses, and loading them from the model store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class ModelSet:
    detector: object  # ml.base.Detector
    binary: object | None = None  # ml.base.Classifier
    species: object | None = None
    order: object | None = None

    def models(self) -> list:
        return [m for m in (self.detector, self.binary, self.order, self.species) if m is not None]

    def describe(self, store=None) -> dict:
        """key -> {name, version, sha256} for the processing_runs row."""
        out = {}
        for m in self.models():
            key = getattr(m, "key", None) or getattr(getattr(m, "info", None), "key", "?")
            name = getattr(m, "name", None) or getattr(getattr(m, "info", None), "name", key)
            entry = {"name": name, "version": None, "sha256": None}
            if store is not None and key != "builtin":
                try:
                    spec = store.spec(key)
                    entry["version"] = getattr(spec, "version", None)
                    pin = store.pin_for(key, "weights") or {}
                    entry["sha256"] = pin.get("sha256") or getattr(spec, "sha256", None)
                except Exception:  # describing is best effort; the run does not depend on it
                    pass
            out[key] = entry
        return out


def registry_loader(store, spec) -> Callable[[torch.device], ModelSet]:
    """Loads ``spec``'s models with ``ml.registry`` (imported lazily: it pulls in the
    architectures). Raises ModelNotInstalledError / ModelError with a clear message."""

    def load(device: torch.device) -> ModelSet:
        from trapgui.ml import registry

        def classifier(key):
            return registry.load_classifier(key, device, store) if key else None

        return ModelSet(
            detector=registry.load_detector(spec.detector, device, store),
            binary=classifier(spec.binary),
            species=classifier(spec.species),
            order=classifier(spec.order),
        )

    return load
