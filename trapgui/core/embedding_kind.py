"""Which embedding space a pipeline's stored ``detections.embedding`` lie in.

Embeddings of different kinds are not comparable (the cheap descriptor, or a classifier's
features through a seeded random projection), so the kind is part of the pipeline
configuration key (``pipeline.spec.PipelineSpec.result_config``): changing it processes again
instead of mixing spaces in one night. Bump ``DESCRIPTOR_VERSION`` whenever
``ml.appearance.appearance_descriptors`` changes its output.
"""

from __future__ import annotations

DESCRIPTOR_VERSION = 1
EMBEDDING_DIM = 128  # = ml.appearance.DESCRIPTOR_DIM (a test keeps them equal)
PROJECTION_SEED = 0  # seed of ml.appearance.RandomProjection for classifier features


def embedding_kind(feature_model: str | None) -> str:
    """``feature_model``: the key of the classifier that sees every crop (the binary one, or
    the first classifier when there is no binary one); None: the cheap descriptor."""
    if feature_model:
        return f"features:{feature_model}:projection-{PROJECTION_SEED}:{EMBEDDING_DIM}"
    return f"descriptor:v{DESCRIPTOR_VERSION}:{EMBEDDING_DIM}"
