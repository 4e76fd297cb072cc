"""Every architecture of the catalogue, built exactly: random-initialised weights saved in the
published formats load strictly through the store and the registry and give the same outputs;
wrong files fail with a sentence naming the model. Each network is built once per module (the
CPU is shared), and forward passes use tiny inputs."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

from trapgui.core.errors import ModelError
from trapgui.ml.architectures import BUILDERS, build_architecture
from trapgui.ml.architectures_weights import (build_with_weights, load_state_dict_strict,
                                              parse_label_map, read_label_map)
from trapgui.ml.model_catalogue import load_model_catalogue
from trapgui.ml.registry import (_make_bn_stats_nontrivial, load_classifier, load_detector,
                                 make_random_weights)
from trapgui.ml.store import ModelStore

# One catalogue model per architecture (classes: the published count, or a small one when the
# count comes from the label map).
REPRESENTATIVE = {
    "fasterrcnn_resnet50_fpn_replaced_predictor": ("fasterrcnn_resnet50_2021", 2),
    "fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_2023", 2),
    "fasterrcnn_mobilenet_v3_large_fpn_ami": ("fasterrcnn_mobilenet_v3_2023", 2),
    "torchvision_resnet50": ("moth_binary_resnet50_2024", 2),
    "turing_resnet50": ("turing_costa_rica_resnet50_2024", 7),
    "timm_resnet50": ("panama_resnet50_2024", 636),
    "timm_tf_efficientnetv2_b3": ("moth_binary_effv2b3_2022", 2),
    "timm_convnext_tiny_in22k": ("insect_orders_convnext_2025", 16),
}
CATALOGUE = load_model_catalogue()


def test_every_catalogue_architecture_is_covered():
    archs = {s.architecture for s in CATALOGUE if s.needs_weights}
    assert archs == set(REPRESENTATIVE) == set(BUILDERS)


class Published:
    """A random-initialised network of one architecture, saved the ways publishers save."""

    def __init__(self, arch: str, folder):
        self.key, self.n = REPRESENTATIVE[arch]
        self.spec = CATALOGUE.get(self.key)
        if self.spec.requires:
            for package in self.spec.requires:
                pytest.importorskip(package, reason=f"{arch} needs the optional package "
                                    f"{package}, which is not installed here")
        torch.manual_seed(7)
        self.model = build_architecture(arch, self.n)
        _make_bn_stats_nontrivial(self.model)
        state = self.model.state_dict()
        self.plain = folder / "plain.pt"
        self.checkpoint = folder / "checkpoint.pth"
        torch.save(state, self.plain)
        torch.save({"model_state_dict": state, "epoch": 12, "optimizer_state_dict": {}}, self.checkpoint)
        self.labels = None
        if self.spec.is_classifier:
            self.labels = folder / "labels.json"
            names = ["moth", "nonmoth"] if self.n == 2 else [str(5000 + i) for i in range(self.n)]
            self.labels.write_text(json.dumps({name: i for i, name in enumerate(names)}))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    cache: dict[str, Published] = {}

    def get(arch: str) -> Published:
        if arch not in cache:
            cache[arch] = Published(arch, tmp_path_factory.mktemp(arch))
        return cache[arch]

    return get


def tiny_detector_input(model):
    """Shrink torchvision's resize so a forward pass on CPU takes milliseconds."""
    model.transform.min_size = (64,)
    model.transform.max_size = 96
    gen = torch.Generator().manual_seed(3)
    return [torch.rand(3, 64, 80, generator=gen), torch.rand(3, 72, 60, generator=gen)]


@pytest.mark.parametrize("arch", sorted(REPRESENTATIVE))
def test_published_weights_load_strictly_and_give_the_same_outputs(arch, published, tmp_path):
    pub = published(arch)
    store = ModelStore(tmp_path / "models", CATALOGUE)
    status = store.import_file(pub.key, pub.plain, pub.labels)  # strict load check inside
    assert status.installed
    if pub.spec.is_detector:
        detector = load_detector(pub.key, "cpu", store)
        images = tiny_detector_input(detector.model)
        tiny_detector_input(pub.model)
        # one image at a time: torchvision pads a batch to its largest image, which changes
        # the smaller one's boxes; ours batches only images of one size (an image's boxes
        # never depend on its batch-mates), so each is compared with its own reference run
        with torch.inference_mode():
            expected = [pub.model([img])[0] for img in images]
        outputs = detector.detect(images)
        assert len(outputs) == 2
        for out, exp, img in zip(outputs, expected, images):
            assert out.boxes.dtype == torch.float32 and out.boxes.shape[1] == 4
            assert out.scores.shape == (out.boxes.shape[0],)
            torch.testing.assert_close(out.boxes, exp["boxes"])
            torch.testing.assert_close(out.scores, exp["scores"])
            if len(out.boxes):
                assert float(out.boxes[:, 2].max()) <= img.shape[2] + 1e-3
        assert detector.score_threshold == pub.spec.score_threshold
        assert detector.working_max_side == 1333
    else:
        clf = load_classifier(pub.key, "cpu", store)
        # Smaller than the input size (the networks pool adaptively): same check, less CPU.
        crops = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
        with torch.inference_mode():
            expected = torch.softmax(pub.model(crops), dim=1)
        probs = clf.predict(crops)
        assert probs.shape == (2, pub.n)
        torch.testing.assert_close(probs, expected)
        torch.testing.assert_close(probs.sum(1), torch.ones(2))
        assert clf.info.input_size == pub.spec.input_size and len(clf.info.labels) == pub.n
        assert clf.info.mean == pub.spec.mean and clf.info.rank == pub.spec.rank
    # The "model_state_dict" checkpoint variant loads to the very same parameters.
    again = build_with_weights(arch, pub.spec.name, pub.checkpoint, pub.n)
    for (k, a), (k2, b) in zip(pub.model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


def test_publishers_own_torchvision_construction_loads_into_ours():
    """The 2023 detector was saved from torchvision's ``get_model(..., num_classes=2)`` (plain
    BatchNorm, num_batches_tracked present): it loads strictly and computes the same.

    The claim has two parts, checked separately so the test holds on every CPU and thread
    count: (1) every loaded tensor is exactly the file's tensor; (2) the two constructions
    compute the same function. BatchNorm2d and FrozenBatchNorm2d order their arithmetic
    differently, so in float32 the last bits differ by a machine-dependent amount (AVX2 vs
    AVX-512 kernels, thread splits) that box regression amplifies (1.8e-4 on a score has been
    seen). In float64 that rounding is ~1e-16 relative, so an error of 1e-9 in a score or 1e-6
    of a pixel in a box could only come from a real difference in the computation."""
    import torchvision

    torch.manual_seed(11)
    theirs = torchvision.models.get_model("fasterrcnn_resnet50_fpn", weights=None,
                                          weights_backbone=None, num_classes=2).eval()
    _make_bn_stats_nontrivial(theirs)
    state = theirs.state_dict()
    ours = build_architecture("fasterrcnn_resnet50_fpn", 2)
    load_state_dict_strict(ours, state, "FasterRCNN 2023")
    loaded = ours.state_dict()
    counters = {k for k in state if k.endswith("num_batches_tracked")}
    assert counters and set(state) - set(loaded) == counters  # only BN counters are dropped
    for key, value in loaded.items():
        assert value.dtype == state[key].dtype and torch.equal(value, state[key]), key

    theirs, ours = theirs.double(), ours.double()
    images = [im.double() for im in tiny_detector_input(theirs)]
    tiny_detector_input(ours)
    with torch.inference_mode():
        a, b = theirs(images), ours(images)
    for x, y in zip(a, b):
        assert len(x["scores"]) > 0 and x["boxes"].dtype == torch.float64
        torch.testing.assert_close(x["labels"], y["labels"], rtol=0, atol=0)
        torch.testing.assert_close(x["scores"], y["scores"], rtol=0, atol=1e-9)
        torch.testing.assert_close(x["boxes"], y["boxes"], rtol=0, atol=1e-6)
    # ...and the 2021 model (COCO model with its predictor replaced) has the same layout.
    old = build_architecture("fasterrcnn_resnet50_fpn_replaced_predictor", 2)
    load_state_dict_strict(old, state, "FasterRCNN 2021")


def test_timm_resnet50_is_built_as_timm_builds_it():
    """The timm ResNet-50 species classifiers are built with torchvision's ResNet-50 (no timm
    import at start-up): timm's own network takes the same state dict strictly and computes
    the same function (float64: any real difference in the layers would show far above
    rounding)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(5)
    theirs = timm.create_model("resnet50", pretrained=False, num_classes=9).eval()
    _make_bn_stats_nontrivial(theirs)
    ours = build_architecture("timm_resnet50", 9)
    load_state_dict_strict(ours, theirs.state_dict(), "timm resnet50")
    assert set(ours.state_dict()) == set(theirs.state_dict())
    x = torch.rand((2, 3, 96, 96), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = theirs.double()(x), ours.double()(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert a.abs().max() > 1e-3  # not vacuous


def test_mobilenet_detector_has_the_publishers_anchors(published):
    model = published("fasterrcnn_mobilenet_v3_large_fpn_ami").model
    assert model.rpn.anchor_generator.sizes == ((64, 128, 256, 512),) * 3
    assert model.rpn.head.cls_logits.out_channels == 4 * 3  # 4 sizes x 3 aspect ratios
    assert model.rpn.score_thresh == 0.05
    assert model.roi_heads.detections_per_img == 500
    bn = [m for m in model.backbone.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(p.requires_grad for p in model.backbone.body.parameters())


def test_turing_layout_matches_the_published_key_names(published):
    keys = list(published("turing_resnet50").model.state_dict())
    assert keys[0] == "backbone.0.weight" and "backbone.4.0.conv1.weight" in keys
    assert keys[-1] == "classifier.weight" and "classifier.bias" not in keys


def test_wrong_architecture_is_named(published, tmp_path):
    resnet = published("torchvision_resnet50")
    with pytest.raises(ModelError, match="not the weights for Turing Costa Rica") as err:
        build_with_weights("turing_resnet50", "Turing Costa Rica Species Classifier",
                           resnet.plain, 2)
    assert "missing" in str(err.value) and "do not belong" in str(err.value)
    with pytest.raises(ModelError, match="trained for 2 classes but the label map has 5"):
        build_with_weights("torchvision_resnet50", "Moth", resnet.plain, 5, labels_count=5)
    with pytest.raises(ModelError, match=r"wrong shape \(e.g. fc.weight: the file has \[2, 2048\]"):
        build_with_weights("torchvision_resnet50", "Moth", resnet.plain, 5)


def test_label_map_of_the_wrong_size_for_a_fixed_size_model(tmp_path):
    labels = tmp_path / "map.json"
    labels.write_text(json.dumps({f"sp{i}": i for i in range(5)}))
    store = ModelStore(tmp_path / "m", CATALOGUE)
    with pytest.raises(ModelError, match="has 5 labels but 'Global Species Classifier - Aug 2024' "
                                         "has 29176 classes"):
        store.import_file("global_resnet50_2024", labels, labels)


def test_dataparallel_prefix_missing_bn_counters_and_numpy_metrics_are_accepted(published, tmp_path):
    pub = published("torchvision_resnet50")
    state = pub.model.state_dict()
    wrapped = OrderedDict(("module." + k, v) for k, v in state.items()
                          if not k.endswith("num_batches_tracked"))
    path = tmp_path / "dp.pth"
    torch.save({"model_state_dict": wrapped, "best_acc": np.float64(0.93),
                "epoch": np.int64(30)}, path)
    model = build_with_weights("torchvision_resnet50", "Moth", path, 2)
    assert torch.equal(model.fc.weight, pub.model.fc.weight)


def test_arbitrary_python_objects_are_refused(published, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": published("torchvision_resnet50").model.state_dict(),
                "config": ValueError("not a tensor")}, path)
    with pytest.raises(ModelError, match="Python objects besides model weights"):
        build_with_weights("torchvision_resnet50", "Moth", path, 2)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"<html><body>404 Not Found</body></html>", "web page"),
    (b"PK\x03\x04 not really a zip", "damaged or incomplete"),
    (b'{"moth": 0}', "JSON"),
])
def test_broken_files_are_explained(tmp_path, content, message):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        build_with_weights("torchvision_resnet50", "Moth", path, 2)


def test_label_maps():
    assert parse_label_map({"nonmoth": 1, "moth": 0}) == ["moth", "nonmoth"]
    assert parse_label_map({"1234567": 1, "7654321": 0}) == ["7654321", "1234567"]
    assert parse_label_map({"0": "Lepidoptera", "1": "Diptera"}) == ["Lepidoptera", "Diptera"]
    with pytest.raises(ModelError, match="without gaps"):
        parse_label_map({"a": 0, "b": 2})
    with pytest.raises(ModelError, match="not a label map"):
        parse_label_map({"a": [1]})


def test_make_random_weights_is_deterministic_and_in_published_format(tmp_path):
    a, labels = make_random_weights("turing_anguilla_resnet50_2024", tmp_path / "a.pt", seed=3,
                                    num_classes=4)
    b, _ = make_random_weights("turing_anguilla_resnet50_2024", tmp_path / "b.pt", seed=3,
                               num_classes=4)
    c, _ = make_random_weights("turing_anguilla_resnet50_2024", tmp_path / "c.pt", seed=4,
                               num_classes=4, fmt="checkpoint")
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    sc = torch.load(c, weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert set(sc) >= {"model_state_dict"} and not torch.equal(sa["classifier.weight"],
                                                                sc["model_state_dict"]["classifier.weight"])
    assert len(read_label_map(labels)) == 4
