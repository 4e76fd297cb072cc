"""The model store against a real HTTP server on 127.0.0.1 serving weights these tests make
(random-initialised, in the published format): progress, cancel + resume, retries, servers
that ignore Range or send web pages, checksums and pins, import, verify, remove, the CLI."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from model_http_server import Fault, ModelHTTPServer
from trapgui.core.errors import DownloadCancelled, DownloadError, ModelError, ModelNotInstalledError
from trapgui.ml.model_catalogue import parse_model_catalogue, resource_path
from trapgui.ml.registry import load_classifier, make_random_weights
from trapgui.ml.store import ModelState, ModelStore

KEY = "moth_binary_resnet50_2024"
WEIGHTS = f"/{KEY}/moth-nonmoth_resnet50_20240417_b4fe3efe.pth"
LABELS = f"/{KEY}/05-moth-nonmoth_category_map.json"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    d = tmp_path_factory.mktemp("published")
    weights, labels = make_random_weights(KEY, d / "moth.pth", seed=1)
    other, _ = make_random_weights(KEY, d / "moth-other.pth", seed=2)
    return {"weights": weights.read_bytes(), "labels": labels.read_bytes(),
            "other": other.read_bytes(), "dir": d, "weights_path": weights, "labels_path": labels}


@pytest.fixture(scope="module")
def server():
    with ModelHTTPServer() as srv:
        yield srv


@pytest.fixture
def srv(server, published):
    server.clear()
    server.add(WEIGHTS, published["weights"])
    server.add(LABELS, published["labels"])
    return server


def local_catalogue(base_url: str, overrides: dict | None = None):
    """The real catalogue with every URL moved to the local server (same file names)."""
    doc = json.loads(resource_path("models.json").read_text(encoding="utf-8"))
    for m in doc["models"]:
        for field in ("weights_url", "labels_url"):
            if m[field]:
                m[field] = f"{base_url}/{m['key']}/{m[field].rsplit('/', 1)[-1]}"
        m.update((overrides or {}).get(m["key"], {}))
    return doc


@pytest.fixture
def store(tmp_path, srv):
    return ModelStore(tmp_path / "models", parse_model_catalogue(local_catalogue(srv.base_url)),
                      retries=3, backoff_s=0.01)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_reports_progress_installs_and_pins(store, srv, published):
    seen = []
    status = store.download(KEY, progress=lambda done, total: seen.append((done, total)))
    assert status.state is ModelState.INSTALLED
    total = len(published["weights"]) + len(published["labels"])
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes backwards
    assert len(seen) > 10  # streamed, not one jump
    assert store.weights_path(KEY).read_bytes() == published["weights"]
    assert not list(store.weights_path(KEY).parent.glob("*.part*"))
    pins = json.loads((store.models_dir / "pins.json").read_text())
    assert pins[KEY]["weights"]["sha256"] == sha(published["weights"])
    assert pins[KEY]["labels"]["sha256"] == sha(published["labels"])
    assert len(srv.requests_for(WEIGHTS)) == 1
    clf = load_classifier(KEY, "cpu", store)
    assert clf.info.labels == ["moth", "nonmoth"] and clf.info.positive_labels == {"moth"}
    assert clf.info.resize_mode == "stretch"
    assert load_classifier(KEY, "cpu", store, resize_mode="pad").info.resize_mode == "pad"
    with pytest.raises(ModelError, match="resize mode"):
        load_classifier(KEY, "cpu", store, resize_mode="squash")
    # Installed: a second download does not touch the network.
    store.download(KEY)
    assert len(srv.requests_for(WEIGHTS)) == 1


def test_cancel_keeps_part_and_resume_downloads_only_the_rest(store, srv, published):
    srv.fault(WEIGHTS, Fault("slow", times=1, delay_s=0.002))
    cancel = threading.Event()
    size = len(published["weights"])

    def progress(done, total):
        if done > len(published["labels"]) + size // 3:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        store.download(KEY, progress=progress, cancel=cancel)
    status = store.status(KEY)
    assert status.state is ModelState.PARTIAL
    kept = status.downloaded_bytes
    assert size // 3 <= kept < size
    assert not store.weights_path(KEY).exists()

    status = store.download(KEY)
    assert status.state is ModelState.INSTALLED
    assert store.weights_path(KEY).read_bytes() == published["weights"]
    first, second = srv.requests_for(WEIGHTS)
    assert second.range == f"bytes={kept}-" and second.status == 206
    assert second.if_range  # resume is conditional on the file being the same
    assert second.body_bytes == size - kept  # nothing downloaded twice


def test_dropped_connection_is_retried_from_where_it_stopped(store, srv, published):
    srv.fault(WEIGHTS, Fault("drop", times=2, drop_after=5 << 20))
    status = store.download(KEY)
    assert status.installed
    reqs = srv.requests_for(WEIGHTS)
    assert [r.status for r in reqs] == [200, 206, 206]
    assert reqs[1].range == f"bytes={5 << 20}-" and reqs[2].range == f"bytes={10 << 20}-"
    assert sum(r.body_bytes for r in reqs) == len(published["weights"])
    assert sha(store.weights_path(KEY).read_bytes()) == sha(published["weights"])


def test_a_stalled_connection_times_out_and_resumes(tmp_path, srv, published):
    srv.fault(WEIGHTS, Fault("stall", times=1, drop_after=2 << 20, delay_s=2.0))
    store = ModelStore(tmp_path / "models", parse_model_catalogue(local_catalogue(srv.base_url)),
                       timeout=(5.0, 0.5), retries=2, backoff_s=0)
    assert store.download(KEY).installed
    first, second = srv.requests_for(WEIGHTS)
    assert second.range is not None and second.status == 206
    assert store.weights_path(KEY).read_bytes() == published["weights"]


def test_server_ignoring_range_restarts_from_zero(store, srv, published):
    srv.fault(WEIGHTS, Fault("drop", times=1, drop_after=3 << 20))
    srv.fault(WEIGHTS, Fault("ignore_range", times=None))
    assert store.download(KEY).installed
    reqs = srv.requests_for(WEIGHTS)
    assert reqs[1].range and reqs[1].status == 200  # asked to resume, got the whole file
    assert store.weights_path(KEY).read_bytes() == published["weights"]


def test_complete_part_file_answered_416_is_used(store, srv, published):
    store.download(KEY)
    weights = store.weights_path(KEY)
    part = store.part_path(weights)
    weights.rename(part)
    (part.parent / (part.name + ".json")).write_text(json.dumps({"url": store.spec(KEY).weights_url}))
    srv.clear()
    assert store.download(KEY).installed
    (req,) = srv.requests_for(WEIGHTS)
    assert req.status == 416 and req.range == f"bytes={len(published['weights'])}-"


def test_stale_part_longer_than_the_file_restarts(store, srv, published):
    weights = store.weights_path(KEY)
    weights.parent.mkdir(parents=True)
    part = store.part_path(weights)
    part.write_bytes(b"\0" * (len(published["weights"]) + 10))
    (part.parent / (part.name + ".json")).write_text(json.dumps({"url": store.spec(KEY).weights_url}))
    assert store.download(KEY).installed
    assert [r.status for r in srv.requests_for(WEIGHTS)] == [416, 200]
    assert weights.read_bytes() == published["weights"]


@pytest.mark.parametrize("kind", ["html", "html_octet"])
def test_html_page_instead_of_weights_is_refused(store, srv, kind):
    srv.fault(WEIGHTS, Fault(kind, times=None))
    with pytest.raises(DownloadError, match="web page"):
        store.download(KEY)
    assert store.status(KEY).state is ModelState.NOT_INSTALLED
    assert not store.part_path(store.weights_path(KEY)).exists()


def test_404_fails_at_once_with_a_clear_message(store, srv):
    srv.fault(WEIGHTS, Fault("status", times=None, status=404))
    with pytest.raises(DownloadError, match="not found on the server"):
        store.download(KEY)
    assert len(srv.requests_for(WEIGHTS)) == 1  # no pointless retries


def test_server_errors_are_retried_then_succeed(store, srv):
    srv.fault(WEIGHTS, Fault("status", times=2, status=503))
    assert store.download(KEY).installed
    assert [r.status for r in srv.requests_for(WEIGHTS)] == [503, 503, 200]


def test_server_errors_give_up_after_the_retries(store, srv):
    srv.fault(WEIGHTS, Fault("status", times=None, status=500))
    with pytest.raises(DownloadError, match="failed after 4 attempts"):
        store.download(KEY)
    assert store.status(KEY).state is ModelState.NOT_INSTALLED


def test_published_checksum_mismatch_installs_nothing(tmp_path, srv, published):
    doc = local_catalogue(srv.base_url, {KEY: {"sha256": sha(published["other"])}})
    store = ModelStore(tmp_path / "m", parse_model_catalogue(doc), retries=1, backoff_s=0)
    with pytest.raises(DownloadError, match="published checksum"):
        store.download(KEY)
    assert not store.weights_path(KEY).exists()
    assert not store.part_path(store.weights_path(KEY)).exists()
    doc = local_catalogue(srv.base_url, {KEY: {"sha256": sha(published["weights"])}})
    store = ModelStore(tmp_path / "m", parse_model_catalogue(doc), retries=1, backoff_s=0)
    assert store.download(KEY).installed
    assert "weights" not in json.loads((store.models_dir / "pins.json").read_text())[KEY]


def test_pin_detects_a_changed_server_file_and_a_tampered_disk_file(store, srv, published):
    store.download(KEY)
    # On disk, same size, different bytes: the cheap status cannot see it, verify does.
    weights = store.weights_path(KEY)
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    status = store.verify(KEY)
    assert status.state is ModelState.CORRUPT and "tampered" in status.problem
    # The server now serves another (valid!) file: refused because of the pin.
    store.remove(KEY)
    srv.add(WEIGHTS, published["other"])
    with pytest.raises(DownloadError, match="differs from the copy trapgui verified"):
        store.download(KEY)
    assert not weights.exists()
    # Forgetting the pin accepts the new file (the publisher updated it on purpose).
    store.remove(KEY, forget_pin=True)
    assert store.download(KEY).installed
    assert store.verify(KEY).installed


def test_size_change_on_disk_is_reported_as_corrupt(store, srv):
    store.download(KEY)
    weights = store.weights_path(KEY)
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    status = store.status(KEY)
    assert status.state is ModelState.CORRUPT and "changed since it was verified" in status.problem
    with pytest.raises(ModelError, match="damaged"):
        load_classifier(KEY, "cpu", store)
    assert store.download(KEY).installed  # downloading again repairs it


def test_truncated_unpinned_file_fails_verify(store, published):
    weights = store.weights_path(KEY)
    weights.parent.mkdir(parents=True)
    weights.write_bytes(published["weights"][: len(published["weights"]) // 2])
    store.labels_path(KEY).write_bytes(published["labels"])
    status = store.verify(KEY)
    assert status.state is ModelState.CORRUPT and "damaged or incomplete" in status.problem


def test_import_from_files_validates_before_accepting(store, published, tmp_path):
    with pytest.raises(ModelNotInstalledError) as missing:
        load_classifier(KEY, "cpu", store)
    assert f"trapgui models download {KEY}`" in str(missing.value)  # the real key, not "KEY"
    with pytest.raises(ModelError, match="label map"):
        store.import_file(KEY, published["weights_path"])  # no label map anywhere
    html = tmp_path / "weights.pth"
    html.write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(ModelError, match="weights.pth cannot be used: it is a web page"):
        store.import_file(KEY, html, published["labels_path"])
    three = tmp_path / "three.json"
    three.write_text(json.dumps({"moth": 0, "nonmoth": 1, "beetle": 2}))
    with pytest.raises(ModelError, match="label map three.json has 3 labels"):  # the user's name
        store.import_file(KEY, published["weights_path"], three)
    assert store.status(KEY).state is ModelState.NOT_INSTALLED
    assert not [p for p in (store.models_dir / KEY).iterdir() if p.name.startswith(".")]

    status = store.import_file(KEY, published["weights_path"], published["labels_path"])
    assert status.installed
    assert store.verify(KEY).installed
    assert load_classifier(KEY, "cpu", store).info.labels == ["moth", "nonmoth"]
    # Another valid file of the same model is refused while the first one is pinned.
    other = published["dir"] / "moth-other.pth"
    with pytest.raises(DownloadError, match="differs from the copy trapgui verified"):
        store.import_file(KEY, other)
    assert store.weights_path(KEY).read_bytes() == published["weights"]


def test_import_of_another_architecture_names_the_model(store, tmp_path):
    wrong, _ = make_random_weights("panama_resnet50_jan2023", tmp_path / "turing.pt", num_classes=2)
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps({"moth": 0, "nonmoth": 1}))
    with pytest.raises(ModelError, match="turing.pt is not the weights for Moth / Non-Moth Classifier"):
        store.import_file(KEY, wrong, labels)
    assert store.status(KEY).state is ModelState.NOT_INSTALLED


def test_remove_deletes_files_and_keeps_the_pin(store, srv, published):
    store.download(KEY)
    freed = store.remove(KEY)
    assert freed == len(published["weights"]) + len(published["labels"])
    assert store.status(KEY).state is ModelState.NOT_INSTALLED
    assert not (store.models_dir / KEY).exists()
    assert store.pin_for(KEY, "weights")["sha256"] == sha(published["weights"])
    store.forget_pin(KEY)
    assert store.pin_for(KEY, "weights") is None
    with pytest.raises(ModelError, match="built in"):
        store.remove("builtin")


def test_builtin_is_always_installed(store):
    assert store.status("builtin").installed
    assert store.download("builtin").installed


def test_cli_download_list_verify_remove(tmp_path, srv, published, monkeypatch, capsys):
    from trapgui.cli.main import run_cli

    catalogue = tmp_path / "models.json"
    catalogue.write_text(json.dumps(local_catalogue(srv.base_url)))
    monkeypatch.setenv("TRAPGUI_CATALOGUE", str(catalogue))
    data = ["--data-dir", str(tmp_path / "data")]
    assert run_cli(data + ["models", "download", KEY]) == 0
    assert run_cli(data + ["models", "list"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(KEY))
    assert "installed" in line and "not installed" not in line and "MB" in line
    assert run_cli(data + ["models", "verify"]) == 0
    assert f"{KEY}: OK" in capsys.readouterr().out
    assert run_cli(data + ["models", "remove", KEY]) == 0
    assert run_cli(data + ["models", "import", KEY, str(published["weights_path"]),
                           "--labels", str(published["labels_path"])]) == 0
    assert run_cli(data + ["models", "download", "no_such_model"]) == 4
    assert "no model called 'no_such_model'" in capsys.readouterr().err


def test_a_second_store_cannot_download_the_same_model_at_once(store, srv, published):
    """Two windows/terminals share the models folder: the second is told, not allowed to
    write the same .part file."""
    srv.fault(WEIGHTS, Fault("slow", times=1, delay_s=0.01))
    cancel, started, errors = threading.Event(), threading.Event(), []

    def first():
        try:
            store.download(KEY, progress=lambda d, t: started.set() if d > 1 << 20 else None,
                           cancel=cancel)
        except DownloadCancelled as exc:
            errors.append(exc)

    worker = threading.Thread(target=first)
    worker.start()
    assert started.wait(30)
    other = ModelStore(store.models_dir, store.model_catalogue)
    with pytest.raises(ModelError, match="already being downloaded"):
        other.download(KEY)
    with pytest.raises(ModelError, match="already being downloaded"):
        other.remove(KEY)
    cancel.set()
    worker.join(30)
    assert errors and isinstance(errors[0], DownloadCancelled)
    assert other.download(KEY).installed  # the lock went with the first download
    assert other.weights_path(KEY).read_bytes() == published["weights"]


def test_unwritable_models_folder_is_a_clear_error(tmp_path, srv):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    store = ModelStore(blocker / "models", parse_model_catalogue(local_catalogue(srv.base_url)))
    with pytest.raises(ModelError, match="Cannot create the model folder"):
        store.download(KEY)


def test_listing_models_does_not_import_torch():
    """The models dialog and `trapgui models list` should not wait seconds for torch."""
    import subprocess
    import sys

    code = ("import sys, trapgui.ml.store as s, trapgui.cli.models_cmd; "
            "s.ModelStore(sys.argv[1]).statuses(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, "/nonexistent/models"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
