"""The model catalogue: ``resources/models.json`` as typed, read-only specs.

The catalogue is data (names, URLs, input sizes, normalisation, architectures) so adding a
published model never needs code unless it brings a new architecture. ``resource_path`` finds
files under ``resources/`` both in a source checkout and inside a PyInstaller bundle.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from trapgui.core.errors import ModelError
from trapgui.core.types import Rank

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE_FILE = "models.json"
CATALOGUE_ENV = "TRAPGUI_CATALOGUE"
BUILTIN_KEY = "builtin"
TASKS = ("detection", "classification")
RESIZE_MODES = ("stretch", "pad")


def resource_path(name: str) -> Path:
    """Path of ``resources/<name>``: the PyInstaller bundle first (``sys._MEIPASS``), then the
    source tree. Returns the source-tree path when neither exists so errors name a real place."""
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "resources" / name)
    candidates.append(REPO_ROOT / "resources" / name)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[-1]


@dataclass(frozen=True)
class ModelSpec:
    key: str
    name: str
    task: str  # "detection" | "classification"
    rank: Rank | None  # classifiers only
    architecture: str  # id understood by trapgui.ml.architectures
    weights_url: str | None  # None: needs no weights (the built-in detector)
    labels_url: str | None
    input_size: int | None = None  # classifiers: square side in pixels
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    normalisation: str | None = None  # "imagenet" | "half"
    sha256: str | None = None  # None: none published (trapgui pins the first verified one)
    labels_sha256: str | None = None
    size_bytes: int | None = None  # None: unknown until the server says
    score_threshold: float | None = None  # detectors: the publisher's "keep" threshold
    # detectors: boxes scoring below ``storage_floor`` are not stored; stored boxes scoring
    # below ``classification_floor`` are stored unclassified (classified on demand when a
    # user lowers the detection threshold below it). None: store / classify everything.
    storage_floor: float | None = None
    classification_floor: float | None = None
    resize_mode: str = "stretch"  # classifiers: "stretch" to a square or "pad" to square first
    positive_labels: frozenset[str] = field(default_factory=frozenset)
    antenna_slugs: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # optional Python packages, e.g. ("timm",)
    num_classes: int | None = None  # None: as many as the label map has
    checkpoint_format: str | None = None  # how the publisher saved it: "state_dict" | "checkpoint"
    description: str = ""

    @property
    def needs_weights(self) -> bool:
        return self.weights_url is not None

    @property
    def is_detector(self) -> bool:
        return self.task == "detection"

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def weights_filename(self) -> str | None:
        return _filename(self.weights_url)

    @property
    def labels_filename(self) -> str | None:
        return _filename(self.labels_url)

    def missing_requirements(self) -> list[str]:
        """Optional packages this model needs that are not importable here."""
        import importlib.util

        return [name for name in self.requires if importlib.util.find_spec(name) is None]


@dataclass(frozen=True)
class AntennaPipeline:
    """What one Antenna pipeline slug runs: detector, optional binary filter, terminal model."""

    slug: str
    detector: str
    binary: str | None
    classifier: str | None


class ModelCatalogue:
    def __init__(self, specs: list[ModelSpec], pipelines: dict[str, AntennaPipeline]):
        self._specs = {spec.key: spec for spec in specs}
        if len(self._specs) != len(specs):
            raise ModelError("The model catalogue lists the same model key twice.")
        self._by_slug: dict[str, ModelSpec] = {}
        for spec in specs:
            for slug in spec.antenna_slugs:
                self._by_slug[slug] = spec
        self.pipelines = dict(pipelines)
        for pipe in pipelines.values():
            for key in (pipe.detector, pipe.binary, pipe.classifier):
                if key is not None and key not in self._specs:
                    raise ModelError(f"Antenna pipeline '{pipe.slug}' names unknown model '{key}'.")

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def keys(self) -> list[str]:
        return list(self._specs)

    def get(self, key: str) -> ModelSpec:
        try:
            return self._specs[key]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise ModelError(f"There is no model called '{key}' in the catalogue.",
                             hint=f"Known models: {known}.") from None

    def by_antenna_slug(self, slug: str) -> ModelSpec:
        """The model a pipeline slug is named after (its terminal classifier)."""
        try:
            return self._by_slug[slug]
        except KeyError:
            known = ", ".join(sorted(self._by_slug))
            raise ModelError(f"No model in the catalogue serves the Antenna pipeline '{slug}'.",
                             hint=f"Known pipelines: {known}.") from None

    def antenna_pipeline(self, slug: str) -> AntennaPipeline:
        try:
            return self.pipelines[slug]
        except KeyError:
            known = ", ".join(sorted(self.pipelines))
            raise ModelError(f"The Antenna pipeline '{slug}' is not in the model catalogue.",
                             hint=f"Known pipelines: {known}.") from None

    def detectors(self) -> list[ModelSpec]:
        return [s for s in self if s.is_detector]

    def classifiers(self, rank: Rank | str | None = None) -> list[ModelSpec]:
        rank = Rank(rank) if rank is not None else None
        return [s for s in self if s.is_classifier and (rank is None or s.rank == rank)]


def detector_floors(key: str, catalogue: "ModelCatalogue | None" = None) -> tuple[float, float]:
    """(storage floor, classification floor) the catalogue gives detector ``key``; (0, 0) =
    store and classify every box, for a detector the catalogue does not know (tests) or that
    names no floors. The classification floor is never below the storage floor."""
    try:
        spec = (catalogue or load_model_catalogue()).get(key)
    except ModelError:
        return 0.0, 0.0
    storage = spec.storage_floor or 0.0
    return storage, max(storage, spec.classification_floor or 0.0)


def _filename(url: str | None) -> str | None:
    if not url:
        return None
    return url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


def _floor(entry: dict, name: str) -> float | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"model {entry['key']}: {name} must be a number between 0 and 1")
    return float(value)


def _spec_from_entry(entry: dict, norms: dict) -> ModelSpec:
    key = entry["key"]
    task = entry["task"]
    if task not in TASKS:
        raise ValueError(f"model {key}: unknown task {task!r}")
    norm_name = entry.get("normalisation")
    mean = std = None
    if norm_name:
        norm = norms[norm_name]
        mean, std = tuple(norm["mean"]), tuple(norm["std"])
    resize_mode = entry.get("resize_mode") or "stretch"
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"model {key}: unknown resize_mode {resize_mode!r}")
    rank = entry.get("rank")
    if task == "classification" and (not entry.get("input_size") or not mean or rank is None):
        raise ValueError(f"model {key}: a classifier needs input_size, normalisation and rank")
    return ModelSpec(
        key=key,
        name=entry["name"],
        task=task,
        rank=Rank(rank) if rank else None,
        architecture=entry["architecture"],
        weights_url=entry.get("weights_url"),
        labels_url=entry.get("labels_url"),
        input_size=entry.get("input_size"),
        mean=mean,
        std=std,
        normalisation=norm_name,
        sha256=(entry.get("sha256") or None),
        labels_sha256=(entry.get("labels_sha256") or None),
        size_bytes=entry.get("size_bytes"),
        score_threshold=entry.get("score_threshold"),
        storage_floor=_floor(entry, "storage_floor"),
        classification_floor=_floor(entry, "classification_floor"),
        resize_mode=resize_mode,
        positive_labels=frozenset(entry.get("positive_labels") or ()),
        antenna_slugs=tuple(entry.get("antenna_slugs") or ()),
        requires=tuple(entry.get("requires") or ()),
        num_classes=entry.get("num_classes"),
        checkpoint_format=entry.get("checkpoint_format"),
        description=entry.get("description", ""),
    )


def parse_model_catalogue(doc: dict) -> ModelCatalogue:
    norms = doc.get("normalisations", {})
    specs = [_spec_from_entry(entry, norms) for entry in doc["models"]]
    pipelines = {
        slug: AntennaPipeline(slug, p["detector"], p.get("binary"), p.get("classifier"))
        for slug, p in doc.get("antenna_pipelines", {}).items()
    }
    return ModelCatalogue(specs, pipelines)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> ModelCatalogue:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return parse_model_catalogue(doc)


def load_model_catalogue(path: str | Path | None = None) -> ModelCatalogue:
    """Parse the catalogue (``resources/models.json``, or the file named by the environment
    variable TRAPGUI_CATALOGUE) (cached until the file changes). Raises ModelError if it is broken:
    the app cannot offer any model without it, so this is worth a clear message."""
    if path is None:
        # A lab mirror (or a test) can point trapgui at its own catalogue file.
        path = os.environ.get(CATALOGUE_ENV) or resource_path(CATALOGUE_FILE)
    path = Path(path)
    try:
        return _load_cached(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise ModelError(f"The model catalogue {path} is missing; reinstall trapgui.") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"The model catalogue {path} cannot be read ({exc}); reinstall trapgui.") from exc
