"""Batch sizes measured per device and model on first use, cached in the data folder: the
measurement, the cache (reuse, invalidation, damage), and the engine using and recording
them. Real small torch classifiers; the timings themselves are not asserted (machines are
noisy), only what is done with them."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from sqlalchemy import select

from tests.pipeline_helpers import binary_classifier, make_tiny_trap, species_classifier
from trapgui.config.settings import Settings
from trapgui.db.tables import ProcessingRun
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.pipeline.batch_size_cache import BatchSizeCache
from trapgui.pipeline.batch_tuning import (CLASSIFICATION_SIZES, BatchTuner, cache_key, choose,
                                           device_identity, measure)
from trapgui.pipeline.engine import Engine
from trapgui.pipeline.model_set import ModelSet
from trapgui.pipeline.spec import PipelineSpec
from trapgui.scan.indexer import scan_folder

CPU = torch.device("cpu")


def _models():
    return ModelSet(BuiltinDetector(), binary=binary_classifier(), species=species_classifier())


def test_choose_prefers_the_smaller_of_nearly_equal_sizes():
    assert choose({4: 10.0, 8: 20.0, 16: 30.0, 32: 29.0}) == 16
    assert choose({4: 10.0, 8: 29.0, 16: 30.0}) == 8  # within 5 % of the best: less memory
    assert choose({1: 5.0}) == 1


def test_measure_stops_once_larger_batches_stop_helping():
    calls = []

    def run(n):  # a device that gets slower per item above 8
        calls.append(n)
        import time

        time.sleep(0.001 * (n if n <= 8 else 4 * n))

    rates = measure(run, (2, 4, 8, 16, 32, 64, 128), CPU, budget_s=30)
    assert set(rates) <= {2, 4, 8, 16, 32, 64}
    assert 128 not in rates and calls[0] == 2  # one warm-up at the smallest size first


def test_the_first_call_at_each_size_does_not_decide_the_choice():
    """A device whose first call at every new batch size costs extra (buffers, kernels)
    and which is fastest per item at 16: measured once, the set-up cost would favour the
    small sizes; the faster of two timings finds 16."""
    import time

    seen = set()

    def run(n):
        per_item = {4: 0.004, 8: 0.003, 16: 0.002, 32: 0.0025}[n]
        time.sleep(per_item * n + (0.0 if n in seen else 0.08))
        seen.add(n)

    rates = measure(run, (4, 8, 16, 32), CPU, budget_s=30)
    assert choose(rates) == 16, rates


def test_the_first_use_measures_later_ones_read_the_cache(tmp_path):
    cache = BatchSizeCache(tmp_path / "batch_sizes.json")
    lines = []
    models = _models()
    plan = BatchTuner(cache, log_line=lambda level, m: lines.append(m)).plan(
        models, CPU, 2, detection=None, classification=None)
    assert set(plan.classification) == {"darkness_binary", "tiny_species"}
    assert all(n in CLASSIFICATION_SIZES["cpu"] for n in plan.classification.values())
    assert plan.source == {"builtin": "one image at a time on this device",
                           "darkness_binary": "measured", "tiny_species": "measured"}
    assert plan.detection >= 1 and plan.measured_s > 0
    assert any("measured once" in m for m in lines)
    calls = models.binary.calls
    assert calls > 0
    doc = json.loads((tmp_path / "batch_sizes.json").read_text())
    assert len(doc["entries"]) == 2
    entry = cache.get(cache_key(device_identity(CPU, 2), models.binary, "classification"))
    assert entry.batch_size == plan.classification["darkness_binary"]
    assert str(entry.batch_size) in entry.measured

    again_models = _models()
    again = BatchTuner(cache).plan(again_models, CPU, 2, detection=None, classification=None)
    assert again.classification == plan.classification and again.measured_s == 0
    assert again.source["darkness_binary"] == "cache"
    assert again_models.binary.calls == 0 and again_models.species.calls == 0

    # another thread count is another device: measured again
    other = _models()
    BatchTuner(cache).plan(other, CPU, 1, detection=None, classification=None)
    assert other.binary.calls > 0
    assert len(cache.entries()) == 4
    # fixed sizes from the settings: nothing measured, nothing read
    fixed = _models()
    plan = BatchTuner(cache).plan(fixed, CPU, 3, detection=2, classification=12)
    assert plan.classification == {"darkness_binary": 12, "tiny_species": 12}
    assert plan.detection == 2 and fixed.binary.calls == 0
    assert set(plan.source.values()) == {"settings"}


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", json.dumps(
    {"format": 1, "entries": {"x": {"batch_size": "many"}}}), json.dumps({"format": 99})])
def test_a_damaged_cache_is_measured_again_not_an_error(tmp_path, content):
    path = tmp_path / "batch_sizes.json"
    path.write_text(content)
    cache = BatchSizeCache(path)
    assert cache.entries() == []
    models = _models()
    plan = BatchTuner(cache).plan(models, CPU, 2, detection=None, classification=None)
    assert models.binary.calls > 0 and plan.source["darkness_binary"] == "measured"
    assert len(BatchSizeCache(path).entries()) == 2  # rewritten whole


def test_settings_choose_measured_or_fixed_sizes():
    auto = PipelineSpec.from_settings(Settings())
    assert auto.detection_batch_size is None and auto.classification_batch_size is None
    assert auto.tunes_batch_sizes
    fixed = PipelineSpec.from_settings(Settings(auto_batch_sizes=False, detection_batch_size=3,
                                                classification_batch_size=20))
    assert (fixed.detection_batch_size, fixed.classification_batch_size) == (3, 20)
    assert not fixed.tunes_batch_sizes
    assert auto.key == fixed.key  # batch sizes never change results


def test_the_engine_uses_and_records_the_measured_sizes(db, tmp_path):
    trap = make_tiny_trap(tmp_path / "trap", side=256, limit=3, folders=("vermont",))
    dep = scan_folder(db, trap).deployment_id
    cache = BatchSizeCache(tmp_path / "data" / "batch_sizes.json")
    spec = PipelineSpec(binary="darkness_binary", species="tiny_species",
                        detection_batch_size=None, classification_batch_size=None,
                        loader_threads=1)
    loaded = []

    def loader(device):
        loaded.append(_models())
        return loaded[-1]

    for attempt in ("measured", "cache"):
        engine = Engine(db, None, spec, devices="cpu", model_loader=loader,
                        batch_size_cache=cache)
        engine.enqueue_deployment(dep, requeue=True)
        summary = engine.run()
        assert summary.status == "finished" and summary.done == 3
        with db.session() as s:
            run = s.execute(select(ProcessingRun).order_by(ProcessingRun.id.desc())).scalars().first()
        sizes = run.settings["batch_sizes"]["cpu"]
        assert sizes["source"]["darkness_binary"] == attempt
        assert set(sizes["classification"]) == {"darkness_binary", "tiny_species"}
        assert run.devices[0]["batch_sizes"] == sizes
        assert summary.devices[0].batch_size == sizes["detection"]
    assert loaded[1].binary.calls > 0  # the second run classified, without measuring first
    entries = {e.model: e.batch_size for e in cache.entries()}
    assert entries == sizes["classification"]


def test_the_cache_lives_in_the_data_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAPGUI_DATA_DIR", str(tmp_path / "somewhere"))
    assert BatchSizeCache().path == tmp_path / "somewhere" / "batch_sizes.json"
    shutil.rmtree(tmp_path / "somewhere", ignore_errors=True)
