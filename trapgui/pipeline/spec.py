"""What a processing run does: model keys and the settings that change results or speed."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trapgui.core.embedding_kind import embedding_kind
from trapgui.db.jobqueue import pipeline_key

# Bump when the engine's output for the same models and settings changes (e.g. crop method),
# so old results are not mistaken for new ones.
RESULT_FORMAT = 1


# what a classifier of each slot adds to the stored results, for "not installed" notes
WHAT_IT_ADDS = {"binary": "moth / non-moth labels",
                "species": "species names",
                "order": "insect order labels"}


@dataclass(frozen=True)
class LeftOut:
    """A classifier the settings choose that a run goes without (its weights are missing)."""

    key: str
    name: str
    adds: str  # what its results would have added, in words

    def sentence(self, how_to_get: str) -> str:
        return (f"'{self.name}' is not installed, so detections are stored without "
                f"{self.adds}; {how_to_get} and process again to add them.")


@dataclass(frozen=True)
class PipelineSpec:
    """``detection_batch_size`` / ``classification_batch_size`` None: tuned per device and
    model by a short measurement on first use (``pipeline.batch_tuning``), cached.

    Floors (detector scores): boxes below ``storage_floor`` are not stored; stored boxes below
    ``classification_floor`` are stored without classifications ("not classified yet": a
    background job classifies them when a user lowers the detection threshold below the
    floor). None: the detector's defaults from the model catalogue. Both change what is
    stored, so both are part of the pipeline configuration key."""

    detector: str = "builtin"
    binary: str | None = None
    species: str | None = None
    order: str | None = None
    detection_batch_size: int | None = 4
    classification_batch_size: int | None = 64
    top_k: int = 5
    loader_threads: int = 2
    storage_floor: float | None = None
    classification_floor: float | None = None
    crop_fill: float = 0.0  # value (in [0, 1] pixel units) outside the image for "pad" crops
    lease_s: float = 300.0
    name: str | None = None
    # appearance embeddings for tracking (off: tracking by box geometry alone; benchmarks)
    embeddings: bool = True

    def __post_init__(self):
        for attr in ("detection_batch_size", "classification_batch_size", "top_k",
                     "loader_threads"):
            value = getattr(self, attr)
            if value is None and attr.endswith("batch_size"):
                continue
            if int(value) < 1:
                raise ValueError(f"{attr} must be at least 1")
        for attr in ("storage_floor", "classification_floor"):
            value = getattr(self, attr)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{attr} must be between 0 and 1")
        from trapgui.ml.model_catalogue import detector_floors

        storage, classification = detector_floors(self.detector)
        storage = storage if self.storage_floor is None else float(self.storage_floor)
        classification = (classification if self.classification_floor is None
                          else float(self.classification_floor))
        # a box is classified only if it is stored, and without classifiers nothing is: one
        # canonical value per behaviour, so equal behaviours share a configuration key
        if not self.has_classifiers:
            classification = storage
        object.__setattr__(self, "storage_floor", storage)
        object.__setattr__(self, "classification_floor", max(storage, classification))

    def without_uninstalled_classifiers(self, store) -> tuple["PipelineSpec", list["LeftOut"]]:
        """This spec less the classifiers that have no weights in ``store``, and what each one
        would have added: a fresh offline install processes with what it has (the built-in
        detector) on day one instead of stopping. The detector is never dropped (without one
        nothing is processed; the caller says it is missing)."""
        import dataclasses

        left_out, changes = [], {}
        for slot in ("binary", "species", "order"):
            key = getattr(self, slot)
            if not key:
                continue
            try:
                spec = store.spec(key)
            except Exception:  # noqa: BLE001 - not in the catalogue: the run names it
                continue
            if spec.needs_weights and not store.is_installed(key):
                changes[slot] = None
                left_out.append(LeftOut(key, spec.name, WHAT_IT_ADDS[slot]))
        return (dataclasses.replace(self, **changes) if changes else self), left_out

    @classmethod
    def from_settings(cls, settings, **overrides) -> "PipelineSpec":
        auto = getattr(settings, "auto_batch_sizes", False)
        values = dict(
            detector=settings.detector,
            binary=settings.binary_classifier,
            species=settings.species_classifier,
            order=settings.order_classifier,
            detection_batch_size=None if auto else settings.detection_batch_size,
            classification_batch_size=None if auto else settings.classification_batch_size,
            top_k=settings.top_k,
            loader_threads=settings.loader_threads,
            storage_floor=getattr(settings, "storage_floor", None),
            classification_floor=getattr(settings, "classification_floor", None),
        )
        values.update(overrides)
        return cls(**values)

    @property
    def has_classifiers(self) -> bool:
        return any((self.binary, self.species, self.order))

    @property
    def tunes_batch_sizes(self) -> bool:
        return self.detection_batch_size is None or self.classification_batch_size is None

    def result_config(self) -> dict:
        """Everything that changes what is stored (batch sizes and threads do not)."""
        return {
            "format": RESULT_FORMAT,
            "detector": self.detector,
            "binary": self.binary,
            "species": self.species,
            "order": self.order,
            "top_k": self.top_k,
            "storage_floor": self.storage_floor,
            "classification_floor": self.classification_floor,
            "crop_fill": self.crop_fill,
            # stored embeddings of different kinds never meet in one night's tracking
            "embedding": self.embedding_kind,
        }

    @property
    def embedding_kind(self) -> str | None:
        """The embeddings this pipeline stores: features of the classifier that sees every
        crop (as ``pipeline.processor.BatchProcessor`` chooses it), else the descriptor."""
        return embedding_kind(self.binary or self.order or self.species) if self.embeddings else None

    @property
    def key(self) -> str:
        return pipeline_key(self.result_config())

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        parts = [self.detector] + [k for k in (self.binary, self.order, self.species) if k]
        return " + ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)
