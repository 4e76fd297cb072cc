"""The remote parts on their own (no models): client safety rules, credentials, downloader
limits, dynamic batching, the outbox, and registration through the CLI."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from trapgui.core.errors import AuthenticationError, RemoteError

pytestmark = pytest.mark.timeout(60)


def test_client_never_shows_the_token(server, captured_logs):
    from trapgui.remote.client import AntennaClient

    client = AntennaClient(server.base_url, server.token, backoff=0.01)
    assert server.token not in repr(client)
    server.inject("status:500", r"/projects/$", times=None)
    with pytest.raises(RemoteError) as info:
        client.list_projects()
    assert server.token not in str(info.value)
    assert server.token not in captured_logs.text
    client.close()


def test_client_refuses_non_http_addresses():
    from trapgui.remote.client import AntennaClient

    for url in ("file:///etc/passwd", "ftp://host/api", "localhost:8000/api", ""):
        with pytest.raises(RemoteError, match="http"):
            AntennaClient(url, "t")


def test_bad_token_is_one_request_not_a_storm(server):
    from trapgui.remote.client import AntennaClient

    client = AntennaClient(server.base_url, "nope", retries=5)
    with pytest.raises(AuthenticationError, match="refused the token"):
        client.list_jobs(["moth_binary"])
    with pytest.raises(AuthenticationError):
        client.claim_tasks(1, 4)
    assert server.state.unauthorised == 2
    client.close()


def test_claim_is_not_resent_when_the_server_may_have_acted(server):
    """A 500 on a claim may mean the server claimed tasks: resending could claim more than
    the caller knows about, so the client reports it instead (the server re-offers unanswered
    tasks after its visibility timeout)."""
    from trapgui.remote.client import AntennaClient

    server.add_job(5, "moth_binary", ["img00"])
    server.inject("status:500", r"/tasks/$", times=1)
    client = AntennaClient(server.base_url, server.token, backoff=0.01)
    with pytest.raises(RemoteError, match="HTTP 500"):
        client.claim_tasks(5, 1)
    server.inject("status:503", r"/tasks/$", times=2)  # refused: safe to resend
    assert len(client.claim_tasks(5, 1)) == 1
    client.close()


def test_credentials_file_is_owner_only(tmp_path):
    from trapgui.remote.credentials import CredentialStore

    store = CredentialStore(tmp_path / "cfg", use_keyring=False)
    store.set("https://a.example/api/v2", "tok-a")
    store.set("http://127.0.0.1:1/api/v2", "tok-b")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.get("https://a.example/api/v2") == "tok-a"
    store.delete("https://a.example/api/v2")
    assert store.get("https://a.example/api/v2") is None
    assert store.get("http://127.0.0.1:1/api/v2") == "tok-b"
    store.path.write_text("{not json")
    assert store.get("http://127.0.0.1:1/api/v2") is None  # unreadable file: no crash


def test_downloader_limits_and_reasons(server, tmp_path):
    from trapgui.remote.address_policy import AddressPolicy
    from trapgui.remote.downloader import ImageDownloader

    loopback = AddressPolicy.for_server(server.base_url)  # the test server is on 127.0.0.1
    dl = ImageDownloader(threads=2, max_bytes=1000, timeout=(2, 2), retries=0, policy=loopback)
    big = dl.fetch("a", f"{server.root}/images/img00.jpg", tmp_path / "a.jpg")
    assert big.error and "too large" in big.error and not (tmp_path / "a.jpg").exists()
    local = dl.fetch("b", "file:///etc/hostname", tmp_path / "b.jpg")
    assert local.error and "http" in local.error
    server.inject("not_image_octet", r"/images/img01\.", times=1)
    dl2 = ImageDownloader(threads=1, policy=loopback)
    bad = dl2.fetch("c", f"{server.root}/images/img01.jpg", tmp_path / "c.jpg")
    assert bad.error and "not an image" in bad.error
    good = dl2.fetch("d", f"{server.root}/images/img01.jpg", tmp_path / "d.jpg")
    assert good.error is None and good.path.exists()
    dl.shutdown()
    dl2.shutdown()


def test_batcher_waits_at_most_batch_timeout():
    from trapgui.remote.batcher import DynamicBatcher

    b = DynamicBatcher(max_size=4, batch_timeout=0.3)
    assert b.next_batch(1.0) == []  # nothing expected: no waiting
    b.expect(3)
    b.put("a")
    t0 = time.monotonic()
    assert b.next_batch(1.0) == ["a"]  # two still pending, but the batch leaves on time
    assert 0.25 <= time.monotonic() - t0 < 1.0
    threading.Timer(0.05, lambda: (b.put("b"), b.put("c"))).start()
    t0 = time.monotonic()
    assert b.next_batch(1.0) == ["b", "c"]  # nothing more expected: leaves at once
    assert time.monotonic() - t0 < 0.25


def _link_models(model_store):
    """The CLI finds models in the (isolated) user data folder: point it at the test store."""
    data = os.environ["TRAPGUI_DATA_DIR"]
    os.makedirs(data, exist_ok=True)
    os.symlink(model_store.models_dir, os.path.join(data, "models"))


def test_register_pipelines_through_the_cli(server, model_store, monkeypatch, capsys):
    from trapgui.cli.main import run_cli

    _link_models(model_store)
    monkeypatch.setenv("TRAPGUI_REMOTE_TOKEN", server.token)
    argv = ["worker", "register", "--base-url", server.base_url, "--detector", "builtin",
            "--pipeline", "moth_binary", "--pipeline", "panama_moths_2023", "--project", "2"]
    assert run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "project 2 (Panama sheet): created moth_binary, panama_moths_2023" in out
    regs = server.state.registrations
    assert {r["project_id"] for r in regs} == {2}
    config = next(r["config"] for r in regs if r["slug"] == "panama_moths_2023")
    species = next(a for a in config["algorithms"] if a["key"] == "panama_resnet50_2023")
    assert len(species["category_map"]["labels"]) == 40
    assert run_cli(argv) == 0  # again: updated, not created
    assert "updated moth_binary, panama_moths_2023" in capsys.readouterr().out
    assert run_cli(argv[:-1] + ["99"]) == 1
    assert "not visible" in capsys.readouterr().err


def test_worker_cli_bad_token_exit_code(server, model_store, monkeypatch, capsys):
    from trapgui.cli.main import run_cli

    _link_models(model_store)
    monkeypatch.setenv("TRAPGUI_REMOTE_TOKEN", "bad-token-xyz")
    code = run_cli(["worker", "--base-url", server.base_url, "--detector", "builtin",
                    "--pipeline", "moth_binary", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 5
    assert "refused the token" in err and "bad-token-xyz" not in err
