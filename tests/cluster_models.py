"""Picklable model loaders for the cluster tests: Dask workers (other processes) build the same
small real models as ``tests.pipeline_helpers`` (the built-in detector and tiny torch
classifiers) from these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TinyModels:
    """The built-in detector, the darkness moth/non-moth filter and a 7-class species net."""

    species: bool = True

    def __call__(self, device):
        from tests.pipeline_helpers import binary_classifier, species_classifier
        from trapgui.ml.builtin_detector import BuiltinDetector
        from trapgui.pipeline.model_set import ModelSet

        return ModelSet(BuiltinDetector(device=device), binary=binary_classifier(),
                        species=species_classifier() if self.species else None)


@dataclass(frozen=True)
class BrokenModels:
    """A loader that fails like a missing weights file on the worker."""

    def __call__(self, device):
        from trapgui.core.errors import ModelNotInstalledError

        raise ModelNotInstalledError("moth_binary_resnet50_2024", "Moth / non-moth (ResNet-50)")
