"""The model catalogue (resources/models.json) says exactly what the publishers published."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from trapgui.config.settings import Settings
from trapgui.core.errors import ModelError
from trapgui.core.types import Rank
from trapgui.ml.architectures import BUILDERS
from trapgui.ml.base import HALF_MEAN, IMAGENET_MEAN, IMAGENET_STD
from trapgui.ml.model_catalogue import load_model_catalogue, parse_model_catalogue, resource_path

L = "https://object-arbutus.cloud.computecanada.ca/ami-models/moths/localization/"
C = "https://object-arbutus.cloud.computecanada.ca/ami-models/moths/classification/"
O = "https://object-arbutus.cloud.computecanada.ca/ami-models/insect_orders/"
MODEL_CATALOGUE_MD = Path(__file__).resolve().parents[2] / "shared" / "model-catalogue.md"

# key: (weights URL, labels URL, architecture, input size, normalisation, classes)
EXPECTED = {
    "fasterrcnn_resnet50_2021": (L + "v1_localizmodel_2021-08-17-12-06.pt", None,
                                 "fasterrcnn_resnet50_fpn_replaced_predictor", None, "imagenet", 2),
    "fasterrcnn_resnet50_2023": (L + "fasterrcnn_resnet50_fpn_tz53qv9v.pt", None,
                                 "fasterrcnn_resnet50_fpn", None, "imagenet", 2),
    "fasterrcnn_mobilenet_v3_2023": (L + "fasterrcnn_mobilenet_v3_large_fpn_uqfh7u9w.pt", None,
                                     "fasterrcnn_mobilenet_v3_large_fpn_ami", None, "imagenet", 2),
    "moth_binary_resnet50_2024": (C + "moth-nonmoth_resnet50_20240417_b4fe3efe.pth",
                                  C + "05-moth-nonmoth_category_map.json",
                                  "torchvision_resnet50", 128, "imagenet", 2),
    "moth_binary_effv2b3_2022": (C + "moth-nonmoth-effv2b3_20220506_061527_30.pth",
                                 C + "05-moth-nonmoth_category_map.json",
                                 "timm_tf_efficientnetv2_b3", 300, "half", 2),
    "quebec_vermont_resnet50_2024": (C + "quebec-vermont_resnet50_baseline_20240417_950de764.pth",
                                     C + "01_ami-gbif_fine-grained_ne-america_category_map-with_names.json",
                                     "timm_resnet50", 128, "imagenet", 2497),
    "uk_denmark_resnet50_2024": (C + "uk-denmark_resnet50_baseline_20240417_55250a8b.pth",
                                 C + "02_ami-gbif_fine-grained_w-europe_category_map-with_names.json",
                                 "timm_resnet50", 128, "imagenet", 2603),
    "panama_resnet50_2024": (C + "panama_resnet50_baseline_20240417_edbb46dd.pth",
                             C + "03_ami-gbif_fine-grained_c-america_category_map-with_names.json",
                             "timm_resnet50", 128, "imagenet", 636),
    "global_resnet50_2024": (C + "global_resnet50_20240828_b06d3b3a.pth",
                             C + "global_category_map_with_names_20240828.json",
                             "timm_resnet50", 128, "imagenet", 29176),
    "quebec_vermont_resnet50_2023": (C + "moths_quebecvermont_resnet50_randaug_mixres_128_fev24.pth",
                                     C + "quebec-vermont_moth-category-map_19Jan2023.json",
                                     "torchvision_resnet50", 128, "imagenet", None),
    "uk_denmark_resnet50_2023": (C + "uk-denmark-moths-mixedres-20230403_140131_30.pth",
                                 C + "01-moths-ukdenmark_v2_category_map_species_names.json",
                                 "torchvision_resnet50", 128, "imagenet", None),
    "panama_resnet50_2023": (C + "panama_resetnet50_best_5aeb515a.pth",
                             C + "03_moths_centralAmerica_category_map-202311110-with-names.json",
                             "torchvision_resnet50", 128, "imagenet", 1060),
    "panama_resnet50_jan2023": (C + "panama_moth-model_v01_resnet50_2023-01-24-09-51.pt",
                                C + "panama_moth-category-map_24Jan2023.json",
                                "turing_resnet50", 300, "imagenet", 148),
    "turing_uk_resnet50_2024": (C + "turing-uk_v03_resnet50_2024-05-13-10-03_state.pt",
                                C + "03_uk_data_category_map.json", "turing_resnet50", 300, "half", None),
    "turing_costa_rica_resnet50_2024": (C + "turing-costarica_v03_resnet50_2024-06-04-16-17_state.pt",
                                        C + "03_costarica_data_category_map.json",
                                        "turing_resnet50", 300, "half", None),
    "turing_anguilla_resnet50_2024": (C + "turing-anguilla_v01_resnet50_2024-06-28-17-01_state.pt",
                                      C + "01_anguilla_data_category_map.json",
                                      "turing_resnet50", 300, "half", None),
    "turing_kenya_uganda_resnet50_2024": (C + "turing-kenya-uganda_v01_resnet50_2024-11-19-18-44_state.pt",
                                          C + "01_kenya-uganda_data_category_map.json",
                                          "turing_resnet50", 300, "half", None),
    "insect_orders_convnext_2025": (O + "convnext_tiny_in22k_worder0.5_wbinary0.5_run2_checkpoint.pt",
                                    O + "insect_order_category_map.json",
                                    "timm_convnext_tiny_in22k", 128, "imagenet", 16),
}

SLUGS = {
    "moth_binary": "moth_binary_resnet50_2024",
    "quebec_vermont_moths_2023": "quebec_vermont_resnet50_2024",
    "uk_denmark_moths_2023": "uk_denmark_resnet50_2024",
    "panama_moths_2024": "panama_resnet50_2024",
    "panama_moths_2023": "panama_resnet50_2023",
    "global_moths_2024": "global_resnet50_2024",
    "costa_rica_moths_turing_2024": "turing_costa_rica_resnet50_2024",
    "anguilla_moths_turing_2024": "turing_anguilla_resnet50_2024",
    "kenya-uganda_moths_turing_2024": "turing_kenya_uganda_resnet50_2024",
    "insect_orders_2025": "insect_orders_convnext_2025",
}


@pytest.fixture(scope="module")
def catalogue():
    return load_model_catalogue()


def test_every_published_model_is_there_exactly(catalogue):
    assert set(catalogue.keys()) == set(EXPECTED) | {"builtin"}
    for key, (weights, labels, arch, size, norm, classes) in EXPECTED.items():
        spec = catalogue.get(key)
        assert (spec.weights_url, spec.labels_url, spec.architecture) == (weights, labels, arch), key
        assert (spec.input_size, spec.normalisation, spec.num_classes) == (size, norm, classes), key
        assert spec.sha256 is None  # none published: pinned on first download
        assert spec.architecture in BUILDERS
        # timm's ResNet-50 is built with torchvision's identical one
        assert spec.requires == (("timm",) if arch.startswith("timm_") and arch != "timm_resnet50"
                                 else ())
        if spec.is_classifier:
            assert spec.resize_mode == "stretch"
            assert spec.mean == (IMAGENET_MEAN if norm == "imagenet" else HALF_MEAN)
            assert spec.std == (IMAGENET_STD if norm == "imagenet" else (0.5, 0.5, 0.5))


def test_detectors_thresholds_and_builtin(catalogue):
    assert {s.key: s.score_threshold for s in catalogue.detectors() if s.needs_weights} == {
        "fasterrcnn_resnet50_2021": 0.99, "fasterrcnn_resnet50_2023": 0.80,
        "fasterrcnn_mobilenet_v3_2023": 0.50}
    builtin = catalogue.get("builtin")
    assert builtin.is_detector and not builtin.needs_weights and builtin.weights_filename is None


def test_ranks_and_binary_filters(catalogue):
    binary = catalogue.classifiers(Rank.BINARY)
    assert {s.key for s in binary} == {"moth_binary_resnet50_2024", "moth_binary_effv2b3_2022"}
    assert all(s.positive_labels == {"moth"} for s in binary)
    assert [s.key for s in catalogue.classifiers("order")] == ["insect_orders_convnext_2025"]
    assert len(catalogue.classifiers(Rank.SPECIES)) == 12
    assert Settings().binary_classifier in catalogue  # the default setting names a real model


def test_antenna_slugs_map_to_models_and_pipelines(catalogue):
    for slug, key in SLUGS.items():
        assert catalogue.by_antenna_slug(slug).key == key
        pipe = catalogue.antenna_pipeline(slug)
        assert pipe.detector == "fasterrcnn_resnet50_2023"
    assert catalogue.antenna_pipeline("moth_binary").classifier is None
    assert catalogue.antenna_pipeline("moth_binary").binary == "moth_binary_resnet50_2024"
    assert catalogue.antenna_pipeline("insect_orders_2025").binary is None
    assert catalogue.antenna_pipeline("global_moths_2024").binary == "moth_binary_resnet50_2024"
    with pytest.raises(ModelError, match="Known pipelines"):
        catalogue.by_antenna_slug("mars_moths_2031")


def test_unknown_key_is_a_clear_error(catalogue):
    with pytest.raises(ModelError, match="no model called 'yolo'"):
        catalogue.get("yolo")


@pytest.mark.skipif(not MODEL_CATALOGUE_MD.is_file(), reason="../shared/model-catalogue.md not here")
def test_matches_the_shared_model_catalogue_document(catalogue):
    """Every file named in ../shared/model-catalogue.md is a URL in our catalogue."""
    text = MODEL_CATALOGUE_MD.read_text(encoding="utf-8")
    bases = dict(re.findall(r"`(L|C|O) = (https://\S+/)`", text))
    named = set()
    for prefix, files in re.findall(r"`(L|C|O)` \+ ((?:`[^`]+`(?:, )?)+)", text):
        named |= {bases[prefix] + f for f in re.findall(r"`([^`]+)`", files)}
    urls = {u for s in catalogue for u in (s.weights_url, s.labels_url) if u}
    assert len(named) >= 30
    assert named == urls
    for slug in re.findall(r"`([a-z_-]+_20\d\d|moth_binary)`", text.split("Notes", 1)[1]):
        catalogue.by_antenna_slug(slug)


def test_resource_path_prefers_the_pyinstaller_bundle(tmp_path, monkeypatch):
    assert resource_path("models.json").is_file()
    bundled = tmp_path / "resources" / "models.json"
    bundled.parent.mkdir()
    bundled.write_text("{}")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_path("models.json") == bundled
    assert resource_path("other.txt") == resource_path("other.txt")  # falls back to the source tree
    assert resource_path("other.txt").parent.name == "resources"


def test_catalogue_override_and_broken_files(tmp_path, monkeypatch):
    doc = json.loads(resource_path("models.json").read_text(encoding="utf-8"))
    doc["models"] = doc["models"][:2]
    doc["antenna_pipelines"] = {}
    path = tmp_path / "mirror.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("TRAPGUI_CATALOGUE", str(path))
    assert load_model_catalogue().keys() == ["builtin", "fasterrcnn_resnet50_2021"]
    path.write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        load_model_catalogue(path)
    with pytest.raises(ModelError, match="is missing"):
        load_model_catalogue(tmp_path / "nowhere.json")
    doc["models"].append(dict(doc["models"][1]))
    with pytest.raises(ModelError, match="same model key twice"):
        parse_model_catalogue(doc)
