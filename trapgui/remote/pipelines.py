"""Antenna pipeline slugs → trapgui models (via the model catalogue), and the registration
payloads (``PipelineConfigResponse`` with category maps) announcing what this machine serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trapgui.core.errors import ModelError, UserInputError
from trapgui.core.types import Rank
from trapgui.ml.model_catalogue import ModelCatalogue, load_model_catalogue
from trapgui.pipeline.spec import PipelineSpec
from trapgui.remote.schemas import (
    AlgorithmRef,
    algorithm_config,
    category_map,
    pipeline_config_response,
)


@dataclass(frozen=True)
class RemotePipeline:
    slug: str
    detector: str
    binary: str | None
    species: str | None
    order: str | None

    @property
    def model_keys(self) -> list[str]:
        return [k for k in (self.detector, self.binary, self.order, self.species) if k]

    @property
    def classifier_keys(self) -> list[str]:
        return [k for k in (self.binary, self.order, self.species) if k]

    @property
    def terminal(self) -> str | None:
        """The final classifier: its classification is ``terminal: true``."""
        return self.species or self.order or self.binary

    def spec(self, *, classification_batch_size: int = 64, top_k: int = 5,
             detection_batch_size: int = 4) -> PipelineSpec:
        # the server gets every stored box with its classifications (nothing is classified
        # later on demand for it): the detector's storage floor, no classification floor
        return PipelineSpec(detector=self.detector, binary=self.binary, species=self.species,
                            order=self.order, detection_batch_size=detection_batch_size,
                            classification_batch_size=classification_batch_size, top_k=top_k,
                            classification_floor=0.0, name=f"Antenna {self.slug}")


def resolve_pipeline(slug: str, catalogue: ModelCatalogue | None = None, *,
                     detector: str | None = None) -> RemotePipeline:
    """The models a slug runs. ``detector`` replaces the catalogue's detector (e.g. the
    built-in one on a machine without the Faster R-CNN weights); it is announced as such when
    registering, so results never claim to come from a model that did not run."""
    catalogue = catalogue or load_model_catalogue()
    try:
        pipe = catalogue.antenna_pipeline(slug)
    except ModelError as exc:
        raise UserInputError(str(exc.message), hint=exc.hint) from None
    species = order = None
    if pipe.classifier is not None:
        rank = catalogue.get(pipe.classifier).rank
        if rank is Rank.ORDER:
            order = pipe.classifier
        elif rank is Rank.BINARY:
            raise ModelError(f"Pipeline '{slug}': its classifier {pipe.classifier} is a binary "
                             "filter, not a final classifier.")
        else:
            species = pipe.classifier
    det = detector or pipe.detector
    catalogue.get(det)  # a clear error for an unknown override
    return RemotePipeline(slug=slug, detector=det, binary=pipe.binary, species=species,
                          order=order)


def known_slugs(catalogue: ModelCatalogue | None = None) -> list[str]:
    return sorted((catalogue or load_model_catalogue()).pipelines)


def missing_models(pipeline: RemotePipeline, store) -> list[str]:
    """Model keys of the pipeline that are not installed (or damaged) on this machine."""
    return [k for k in pipeline.model_keys if not store.is_installed(k)]


def servable_pipelines(store, slugs: Sequence[str] | None = None, *,
                       detector: str | None = None) -> tuple[list[RemotePipeline], dict[str, str]]:
    """(pipelines whose models are all installed, {slug: why not} for the others)."""
    catalogue = store.model_catalogue
    ok, why = [], {}
    for slug in slugs or known_slugs(catalogue):
        try:
            pipe = resolve_pipeline(slug, catalogue, detector=detector)
        except (ModelError, UserInputError) as exc:
            why[slug] = exc.message
            continue
        missing = missing_models(pipe, store)
        if missing:
            why[slug] = "models not installed: " + ", ".join(missing)
        else:
            ok.append(pipe)
    return ok, why


def algorithm_refs(pipeline: RemotePipeline, catalogue: ModelCatalogue | None = None) -> dict[str, AlgorithmRef]:
    catalogue = catalogue or load_model_catalogue()
    return {k: AlgorithmRef(key=k, name=catalogue.get(k).name) for k in pipeline.model_keys}


def registration_payload(pipeline: RemotePipeline, store) -> dict:
    """``PipelineConfigResponse`` for one pipeline, with each classifier's category map (read
    from the installed label maps, so the models must be installed)."""
    catalogue = store.model_catalogue
    algorithms = []
    det = catalogue.get(pipeline.detector)
    algorithms.append(algorithm_config(
        key=det.key, name=det.name, description=det.description or det.name,
        task_type="localization", uri=det.weights_url, category=None,
        version_name=det.weights_filename))
    for key in pipeline.classifier_keys:
        spec = catalogue.get(key)
        labels = store.labels(key)
        if not labels:
            raise ModelError(f"The model '{spec.name}' has no label map, so its categories "
                             "cannot be announced.")
        algorithms.append(algorithm_config(
            key=key, name=spec.name, description=spec.description or spec.name,
            task_type="classification", uri=spec.weights_url,
            version_name=spec.weights_filename,
            category=category_map(labels, spec.rank or Rank.SPECIES,
                                  version=spec.labels_filename or key,
                                  description=f"Categories of {spec.name}",
                                  uri=spec.labels_url)))
    names = [catalogue.get(k).name for k in pipeline.model_keys]
    return pipeline_config_response(
        slug=pipeline.slug, name=f"trapgui {pipeline.slug}",
        description="trapgui: " + " → ".join(names), algorithms=algorithms)
