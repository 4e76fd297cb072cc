"""What a processing run does: model keys and the settings that change results or speed."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trapgui.core.embedding_kind import embedding_kind
from trapgui.db.jobqueue import pipeline_key

# Bump when the engine's output for the same models and settings changes (e.g. crop method),
# so old results are not mistaken for new ones.
RESULT_FORMAT = 1


@dataclass(frozen=True)
class PipelineSpec:
    detector: str = "builtin"
    binary: str | None = None
    species: str | None = None
    order: str | None = None
    detection_batch_size: int = 4
    classification_batch_size: int = 64
    top_k: int = 5
    loader_threads: int = 2
    # Boxes scoring below this are not stored (all others are, so view thresholds can change
    # without re-running).
    detection_score_floor: float = 0.0
    crop_fill: float = 0.0  # value (in [0, 1] pixel units) outside the image for "pad" crops
    lease_s: float = 300.0
    name: str | None = None
    # appearance embeddings for tracking (off: tracking by box geometry alone; benchmarks)
    embeddings: bool = True

    def __post_init__(self):
        for attr in ("detection_batch_size", "classification_batch_size", "top_k",
                     "loader_threads"):
            if int(getattr(self, attr)) < 1:
                raise ValueError(f"{attr} must be at least 1")
        if not 0.0 <= self.detection_score_floor <= 1.0:
            raise ValueError("detection_score_floor must be between 0 and 1")

    @classmethod
    def from_settings(cls, settings, **overrides) -> "PipelineSpec":
        values = dict(
            detector=settings.detector,
            binary=settings.binary_classifier,
            species=settings.species_classifier,
            order=settings.order_classifier,
            detection_batch_size=settings.detection_batch_size,
            classification_batch_size=settings.classification_batch_size,
            top_k=settings.top_k,
            loader_threads=settings.loader_threads,
        )
        values.update(overrides)
        return cls(**values)

    def result_config(self) -> dict:
        """Everything that changes what is stored (batch sizes and threads do not)."""
        return {
            "format": RESULT_FORMAT,
            "detector": self.detector,
            "binary": self.binary,
            "species": self.species,
            "order": self.order,
            "top_k": self.top_k,
            "detection_score_floor": self.detection_score_floor,
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
