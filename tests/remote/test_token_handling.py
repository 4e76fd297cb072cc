"""The token: never over plain http to another computer without permission, never in a repr,
not on the command line unless the user insists (and then warned), saved in the system
keyring when there is a real one (tested with keyrings.alt's file-backed backend, configured
per test: never the user's keyring), one copy per server host. And presigned image URLs never
in a log line, an event or an error result."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys

import pytest

from tests.remote.antenna_test_server import SIGNATURE
from tests.remote.processes import REPO
from tests.remote.test_parts import _link_models
from trapgui.core.errors import UserInputError
from trapgui.core.jobs import ItemFailed, LogLine

pytestmark = pytest.mark.timeout(180)


# ---- plain http ---------------------------------------------------------------------------

def test_token_is_never_sent_over_plain_http_to_another_computer():
    from trapgui.remote.client import AntennaClient

    for url in ("http://antenna.example.org/api/v2", "http://192.168.1.10:8000/api/v2",
                "http://0.0.0.0:8000/api/v2"):
        with pytest.raises(UserInputError) as info:
            AntennaClient(url, "s3cret-token")
        text = str(info.value)
        assert "not encrypted" in text and "--allow-insecure-http" in text
        assert "remote_allow_insecure_http" in text and "s3cret-token" not in text
        AntennaClient(url, "s3cret-token", allow_insecure_http=True).close()  # said so: allowed
        AntennaClient(url, None).close()  # no token, nothing secret to send
    for url in ("http://127.0.0.1:8000/api/v2", "http://localhost:8000/api/v2",
                "http://[::1]:8000/api/v2", "https://antenna.example.org/api/v2"):
        AntennaClient(url, "s3cret-token").close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_cli_refuses_insecure_http_unless_allowed(model_store, monkeypatch, capsys):
    from trapgui.cli.main import run_cli

    _link_models(model_store)
    monkeypatch.setenv("TRAPGUI_REMOTE_TOKEN", "env-token-123")
    argv = ["worker", "register", "--base-url", f"http://0.0.0.0:{_closed_port()}/api/v2",
            "--detector", "builtin", "--pipeline", "moth_binary"]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert "not encrypted" in err and "env-token-123" not in err
    # allowed: it goes on, and fails only because nothing listens there
    assert run_cli(argv + ["--allow-insecure-http"]) == 5
    err = capsys.readouterr().err
    assert "not encrypted" not in err and "could not be reached" in err


def test_connection_repr_never_shows_the_token():
    from trapgui.remote.setup import Connection

    conn = Connection("https://antenna.example.org/api/v2", "s3cret-token", "--token-file x")
    assert "s3cret-token" not in repr(conn) and "s3cret-token" not in str(conn)


# ---- token options ------------------------------------------------------------------------

def _register_argv(server, *extra):
    return ["worker", "register", "--base-url", server.base_url, "--detector", "builtin",
            "--pipeline", "moth_binary", "--project", "1", *extra]


def test_token_file_stdin_and_the_flag(server, model_store, monkeypatch, capsys, tmp_path):
    from trapgui.cli.main import run_cli

    _link_models(model_store)
    monkeypatch.delenv("TRAPGUI_REMOTE_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(f"\n  {server.token}  \n")
    token_file.chmod(0o600)
    assert run_cli(_register_argv(server, "--token-file", str(token_file))) == 0
    captured = capsys.readouterr()
    assert "created moth_binary" in captured.out and "warning" not in captured.err

    token_file.chmod(0o644)
    assert run_cli(_register_argv(server, "--token-file", str(token_file))) == 0
    assert "can be read by other users" in capsys.readouterr().err

    for flag in (["--token-stdin"], ["--token-file", "-"]):
        monkeypatch.setattr(sys, "stdin", io.StringIO(server.token + "\n"))
        assert run_cli(_register_argv(server, *flag)) == 0, flag
        assert "warning" not in capsys.readouterr().err

    assert run_cli(_register_argv(server, "--token", server.token)) == 0
    err = capsys.readouterr().err
    assert "--token is visible to other users" in err and server.token not in err

    assert run_cli(_register_argv(server, "--token-file", str(tmp_path / "missing"))) == 2
    assert "cannot be read" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert run_cli(_register_argv(server, "--token-file", str(tmp_path / "empty"))) == 2
    assert "is empty" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run_cli(_register_argv(server, "--token-stdin")) == 2
    assert server.state.unauthorised == 0  # no wrong token was ever sent


def test_login_checks_saves_and_says_where(server, monkeypatch, capsys):
    from trapgui.cli.main import run_cli
    from trapgui.remote.credentials import CredentialStore

    monkeypatch.delenv("TRAPGUI_REMOTE_TOKEN", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong-token\n"))
    assert run_cli(["worker", "login", "--base-url", server.base_url, "--token-stdin"]) == 5
    assert "refused the token" in capsys.readouterr().err
    config = os.environ["TRAPGUI_CONFIG_DIR"]
    assert CredentialStore(config).get(server.base_url) is None  # a refused token is not kept

    monkeypatch.setattr(sys, "stdin", io.StringIO(server.token + "\n"))
    assert run_cli(["worker", "login", "--base-url", server.base_url, "--token-stdin"]) == 0
    out = capsys.readouterr().out
    assert "sees 2 project(s)" in out and "secrets.json (readable only by you)" in out
    assert server.token not in out
    store = CredentialStore(config)
    assert store.get(server.base_url) == server.token
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


# ---- the keyring ----------------------------------------------------------------------------

@pytest.fixture
def file_keyring(tmp_path):
    """keyrings.alt's file-backed backend on a file of this test (never the user's keyring)."""
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
    return backend


def test_token_goes_to_the_keyring_when_there_is_one(tmp_path, file_keyring):
    from trapgui.remote.credentials import KEYRING_SERVICE, CredentialStore

    store = CredentialStore(tmp_path / "cfg", keyring_backend=file_keyring)
    where = store.set("https://antenna.example.org/api/v2", "tok-1")
    assert store.uses_keyring and where.startswith("the system keyring (")
    assert where == store.location
    assert not store.path.exists()  # nothing in the secrets file
    assert file_keyring.get_password(KEYRING_SERVICE, "antenna.example.org") == "tok-1"
    # another run (a new store over the same keyring) finds it, for every spelling of the host
    again = CredentialStore(tmp_path / "cfg", keyring_backend=file_keyring)
    for url in ("https://antenna.example.org/api/v2", "http://antenna.example.org/api/v2/",
                "https://ANTENNA.example.org:443/other/path"):
        assert again.lookup(url) == ("tok-1", where), url
    assert again.get("https://antenna.example.org:8443/api/v2") is None  # another server
    again.delete("https://antenna.example.org")
    assert file_keyring.get_password(KEYRING_SERVICE, "antenna.example.org") is None


def test_a_refusing_keyring_falls_back_to_the_private_file(tmp_path, file_keyring, caplog):
    from keyring.errors import PasswordSetError

    from trapgui.remote.credentials import CredentialStore

    def refuse(*args):
        raise PasswordSetError("locked")

    file_keyring.set_password = refuse
    store = CredentialStore(tmp_path / "cfg", keyring_backend=file_keyring)
    where = store.set("https://antenna.example.org/api/v2", "tok-2")
    assert where == f"{store.path} (readable only by you)"
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.get("https://antenna.example.org/api/v2") == "tok-2"
    assert "refused the token" in caplog.text and "tok-2" not in caplog.text


def test_one_token_per_host_and_older_copies_are_moved(tmp_path, file_keyring):
    import json

    from trapgui.remote.credentials import KEYRING_SERVICE, CredentialStore

    cfg = tmp_path / "cfg"
    store = CredentialStore(cfg, use_keyring=False)
    for url in ("http://127.0.0.1:8000/api/v2", "http://127.0.0.1:8000/api/v2/",
                "http://127.0.0.1:8000", "http://127.0.0.1:8000/api/v1"):
        store.set(url, "tok-3")  # every address the user tried
    store.set("http://127.0.0.1:9000/api/v2", "other")
    tokens = json.loads(store.path.read_text())["remote_tokens"]
    assert tokens == {"127.0.0.1:8000": "tok-3", "127.0.0.1:9000": "other"}

    # saved by an older version under full addresses: found, and kept once under the host
    store.path.write_text(json.dumps({"remote_tokens": {
        "https://a.example/api/v2": "old-a", "https://a.example/api/v2/": "old-a"}}))
    assert store.get("https://a.example/api/v2") == "old-a"
    assert json.loads(store.path.read_text())["remote_tokens"] == {"a.example": "old-a"}

    file_keyring.set_password(KEYRING_SERVICE, "https://b.example/api/v2", "old-b")
    kept = CredentialStore(cfg, keyring_backend=file_keyring)
    assert kept.get("https://b.example/api/v2") == "old-b"
    assert file_keyring.get_password(KEYRING_SERVICE, "b.example") == "old-b"
    assert file_keyring.get_password(KEYRING_SERVICE, "https://b.example/api/v2") is None


def test_which_keyring_is_used(monkeypatch, tmp_path, file_keyring):
    """An explicitly configured backend is used as chosen; a merely detected plaintext or
    fail backend is passed over for the owner-only file."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    from trapgui.remote.credentials import CredentialStore, detect_keyring

    assert detect_keyring() is None  # conftest: PYTHON_KEYRING_BACKEND=fail
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("KEYRING_PROPERTY_FILE_PATH", str(tmp_path / "chosen.cfg"))
    chosen = detect_keyring()
    assert isinstance(chosen, PlaintextKeyring) and chosen.file_path == str(tmp_path / "chosen.cfg")
    assert CredentialStore(tmp_path / "cfg").uses_keyring

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-keyringrc"))
    previous = keyring.get_keyring()
    keyring.set_keyring(file_keyring)  # what detection finds when keyrings.alt is installed
    try:
        assert detect_keyring() is None
        assert not CredentialStore(tmp_path / "cfg").uses_keyring
    finally:
        keyring.set_keyring(previous)


def test_cli_login_into_a_configured_keyring(server, tmp_path):
    """End to end in a separate process: the keyring chosen in the environment gets the
    token, the secrets file stays empty, and the CLI says where the token went."""
    from keyrings.alt.file import PlaintextKeyring

    from trapgui.remote.credentials import KEYRING_SERVICE, token_key

    ring = tmp_path / "ring.cfg"
    env = dict(os.environ, PYTHONPATH=str(REPO), KEYRING_PROPERTY_FILE_PATH=str(ring),
               PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring")
    env.pop("TRAPGUI_REMOTE_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "trapgui", "worker", "login", "--base-url",
                           server.base_url, "--token-stdin"], input=server.token + "\n",
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "saved in the system keyring (" in done.stdout and server.token not in done.stdout
    backend = PlaintextKeyring()
    backend.file_path = str(ring)
    assert backend.get_password(KEYRING_SERVICE, token_key(server.base_url)) == server.token
    assert not (tmp_path / "config" / "secrets.json").exists()
    assert not (os.path.exists(os.path.join(os.environ["TRAPGUI_CONFIG_DIR"], "secrets.json")))


@pytest.fixture
def services():
    from trapgui.services.app_services import Services

    svc = Services.create()
    yield svc
    svc.close()


def test_the_remote_tab_service_says_where_the_token_went(server, services):
    report = services.remote.test_and_save(server.base_url, server.token)
    assert report.ok and report.message.startswith("Connected. 2 project(s)")
    assert report.message.endswith("secrets.json (readable only by you).")
    assert services.remote.stored_token(server.base_url + "/") == server.token


# ---- presigned URLs --------------------------------------------------------------------------

def test_presigned_urls_never_reach_logs_events_or_error_results(server, make_worker,
                                                                 cheap_ids, captured_logs):
    ids = cheap_ids[:6]
    server.add_job(51, "moth_binary", ids)
    server.inject("reset_mid_body", f"/images/{ids[0]}\\.", times=1)  # retried, logged
    server.inject("status:404", f"/images/{ids[1]}\\.", times=None)
    server.inject("not_image", f"/images/{ids[2]}\\.", times=None)
    server.inject("redirect", f"/images/{ids[3]}\\.", times=None,
                  target="http://169.254.169.254/latest/meta-data/?" + SIGNATURE)
    server.inject("status:503", f"/images/{ids[4]}\\.", times=1)
    server.inject("drip", f"/images/{ids[5]}\\.", times=None, seconds=0.2)
    worker, events = make_worker(server, download_deadline_s=2.0)
    summary = worker.run()
    assert summary.error is None and summary.done + summary.failed == 6 and summary.posted == 6
    assert server.state.jobs[51].tasks  # the URLs handed out did carry the signature
    texts = [captured_logs.text] + [(e.message if isinstance(e, LogLine) else f"{e.name}: {e.reason}")
                   for e in events if isinstance(e, (LogLine, ItemFailed))]
    # error results (a success result carries source_images[].url by contract: it goes back
    # to the server that handed the URL out)
    errors = [r["error"] for answers in server.answers(51).values() for _, r in answers
              if "error" in r]
    assert len(errors) == 4
    texts += errors
    for text in texts:
        assert SIGNATURE not in text and "X-Amz" not in text
    assert any("retrying" in r.getMessage() for r in captured_logs.records)  # logged, no URL


def test_unexpected_errors_are_logged_without_the_url(server, tmp_path, captured_logs):
    from trapgui.remote.address_policy import AddressPolicy
    from trapgui.remote.client import TaskInfo
    from trapgui.remote.downloader import Download, ImageDownloader

    url = f"http://images.example.org/images/img00.jpg?X-Amz-Signature={SIGNATURE}"

    def broken_resolver(host, port):
        raise ValueError(f"resolver failed for {url}")  # an error whose text holds the URL

    dl = ImageDownloader(threads=1, policy=AddressPolicy.for_server(server.base_url),
                         resolve=broken_resolver, describe=lambda k: f"img00 (task {k})")
    result = dl.fetch("t1", url, tmp_path / "x.jpg")
    dl.shutdown()
    assert result.error == "The image could not be downloaded (ValueError)."
    assert "Unexpected error downloading image img00 (task t1)" in captured_logs.text
    assert "ValueError" in captured_logs.text and SIGNATURE not in captured_logs.text
    assert SIGNATURE not in repr(result) and SIGNATURE not in repr(Download("k", url))
    assert SIGNATURE not in repr(TaskInfo("t", "i", url, "r"))
