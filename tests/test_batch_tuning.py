"""Batch sizes measured per device and model on first use, cached in the data folder: the
measurement, the cache (reuse, invalidation, damage), and the engine using and recording
them, and each size's peak memory with the cap it must stay under. Real small torch
classifiers; the timings themselves are not asserted (machines are noisy), only what is done
with them."""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest
import torch
from sqlalchemy import select

from tests.pipeline_helpers import binary_classifier, make_tiny_trap, species_classifier
from trapgui.config.settings import Settings
from trapgui.db.tables import ProcessingRun
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.core import process_memory
from trapgui.pipeline.batch_memory import CPU_BATCH_MB, PeakMemory, batch_memory_cap_mb
from trapgui.pipeline.batch_size_cache import BatchSizeCache, TunedEntry
from trapgui.pipeline.batch_tuning import (CLASSIFICATION_SIZES, BatchTuner, cache_key, choose,
                                           device_identity, measure)
from trapgui.pipeline.engine import Engine
from trapgui.pipeline.model_set import ModelSet
from trapgui.pipeline.spec import PipelineSpec
from trapgui.scan.indexer import scan_folder

CPU = torch.device("cpu")
MB = 2**20
linux_peaks = pytest.mark.skipif(not sys.platform.startswith("linux") or
                                 not process_memory.reset_peak(),
                                 reason="the peak of a call is read from /proc/self (Linux)")


def _models():
    return ModelSet(BuiltinDetector(), binary=binary_classifier(), species=species_classifier())


def test_choose_prefers_the_smaller_of_nearly_equal_sizes():
    assert choose({4: 10.0, 8: 20.0, 16: 30.0, 32: 29.0}) == 16
    assert choose({4: 10.0, 8: 29.0, 16: 30.0}) == 8  # within 5 % of the best: less memory
    assert choose({1: 5.0}) == 1


def test_choose_keeps_to_the_sizes_under_the_memory_cap():
    rates = {4: 10.0, 8: 20.0, 16: 30.0, 32: 40.0}
    memory = {4: 20.0, 8: 45.0, 16: 120.0, 32: 300.0}
    assert choose(rates) == 32
    assert choose(rates, memory, 256) == 16
    assert choose(rates, memory, 100) == 8
    # a detector whose smallest batch is over the cap still has that one
    assert choose({1: 1.4, 2: 1.5}, {1: 300.0, 2: 600.0}, 256) == 1
    assert choose(rates, {}, 256) == 32  # memory not known: speed alone
    assert choose(rates, memory, None) == 32


def test_measure_stops_once_larger_batches_stop_helping():
    calls = []

    def run(n):  # a device that gets slower per item above 8
        calls.append(n)
        import time

        time.sleep(0.001 * (n if n <= 8 else 4 * n))

    rates = measure(run, (2, 4, 8, 16, 32, 64, 128), CPU, budget_s=30).rates
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

    rates = measure(run, (4, 8, 16, 32), CPU, budget_s=30).rates
    assert choose(rates) == 16, rates


def test_a_size_the_device_has_no_memory_for_ends_the_measurement():
    """A GPU shared with another program: at 32 it runs out of memory. The sizes below are
    measured and chosen from; the failure is not an error of the run."""
    tried = []

    def run(n):
        tried.append(n)
        if n >= 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(0.01)

    found = measure(run, (4, 8, 16, 32, 64), CPU, budget_s=30)
    assert set(found.rates) == {4, 8, 16} and 64 not in tried
    assert choose(found.rates) == 16

    def broken(n):
        raise RuntimeError("shape mismatch")  # not memory: a real error, raised

    with pytest.raises(RuntimeError, match="shape mismatch"):
        measure(broken, (4, 8), CPU, budget_s=30)


@linux_peaks
def test_the_peak_of_a_call_is_measured_not_what_remains_after_it():
    held = torch.ones(40 * MB // 4)  # in use before: not the call's
    peak = PeakMemory(CPU)
    peak.start()
    buffer = torch.ones(120 * MB // 4)  # touched: resident
    del buffer  # freed before the call ends: only the peak sees it
    mb = peak.stop()
    assert mb is not None and 110 <= mb <= 180, mb
    peak.start()
    assert peak.stop() < 30  # nothing allocated
    del held


@linux_peaks
def test_measuring_stops_at_the_first_size_over_the_cap():
    """A device where every size is faster per item than the last, and a batch of n takes
    about 30 n MB: the sizes over a 100 MB cap are neither chosen nor any larger one tried."""
    tried = []

    def run(n):
        tried.append(n)
        work = torch.ones(n * 30 * MB // 4)
        time.sleep(0.02)  # the same time whatever n: larger is faster per item
        del work

    found = measure(run, (1, 2, 4, 8, 16), CPU, budget_s=30, cap_mb=100)
    assert set(found.rates) == {1, 2, 4} and 8 not in tried
    assert set(found.memory_mb) == {1, 2, 4}
    assert 100 <= found.memory_mb[4] <= 170, found.memory_mb
    assert choose(found.rates, found.memory_mb, 100) == 2
    assert batch_memory_cap_mb(CPU) == CPU_BATCH_MB


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
    if sys.platform.startswith("linux"):  # each size's peak, and the cap it was held to
        assert set(entry.measured_memory) == set(entry.measured)
        assert entry.memory_mb == entry.measured_memory[str(entry.batch_size)]
        assert entry.memory_cap_mb == CPU_BATCH_MB
        assert plan.memory_mb["darkness_binary"] == entry.memory_mb
        assert "MB a batch" in entry.describe()
        assert set(plan.as_record()["batch_memory_mb"]) == {"darkness_binary", "tiny_species"}

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


OLD_FORMAT = json.dumps({"format": 1, "entries": {k: {  # chosen by speed alone: measured again
    "device": device_identity(CPU, 2), "model": m, "role": "classification", "batch_size": 64,
    "per_s": 1.0, "measured_at": "", "measured": {"64": 1.0}}
    for k, m in (("a", "darkness_binary"), ("b", "tiny_species"))}})


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", json.dumps(
    {"format": 2, "entries": {"x": {"batch_size": "many"}}}), json.dumps({"format": 99}),
    OLD_FORMAT])
def test_a_damaged_cache_is_measured_again_not_an_error(tmp_path, content):
    path = tmp_path / "batch_sizes.json"
    path.write_text(content)
    cache = BatchSizeCache(path)
    assert cache.entries() == []
    models = _models()
    plan = BatchTuner(cache).plan(models, CPU, 2, detection=None, classification=None)
    assert models.binary.calls > 0 and plan.source["darkness_binary"] == "measured"
    assert len(BatchSizeCache(path).entries()) == 2  # rewritten whole


def test_an_entry_without_memory_reads_and_describes_as_before(tmp_path):
    cache = BatchSizeCache(tmp_path / "batch_sizes.json")
    entry = TunedEntry(device="mps", model="m", role="classification", batch_size=32,
                       per_s=50.0, measured_at="", measured={"32": 50.0})
    cache.put("k", entry)
    assert cache.get("k") == entry and entry.memory_text == ""
    assert entry.describe() == "m: 32 crops per batch (50.0 crops/s)"


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
