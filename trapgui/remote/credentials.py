"""Where the remote-jobs token is kept.

The system keyring (``keyring``: macOS Keychain, Windows Credential Locker, the Secret Service
of GNOME/KDE) when one is usable; otherwise ``secrets.json`` in the config folder, created
with owner-only permissions (0600) before any secret goes into it. "Usable" means a backend
that really protects the secret: keyring's "fail" and "null" backends and the plaintext file
of keyrings.alt are passed over when they are merely detected (our own 0600 file is no worse),
but a backend the user chose explicitly (``PYTHON_KEYRING_BACKEND`` or keyringrc.cfg) is used
as chosen. :attr:`CredentialStore.location` says where tokens go, in words for the user.

One token per server *host*: ``https://antenna.example.org/api/v2`` and
``http://antenna.example.org/api/v2/`` share it, a different port is a different server. Trying
several spellings of an address therefore leaves one copy, not one per address tested (tokens
that older versions saved under the full address are moved on first use).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

KEYRING_SERVICE = "trapgui-remote"
SECRETS_FILE = "secrets.json"


def token_key(server: str) -> str:
    """``host`` or ``host:port`` (a port other than the scheme's default), lower-case."""
    parts = urlsplit(server.strip())
    host = (parts.hostname or server.strip()).lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if port in (None, default) else f"{host}:{port}"


def _is_placeholder(backend) -> bool:
    """keyring's fail / null backends: they store nothing."""
    from keyring.backends import fail

    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    return isinstance(backend, fail.Keyring) or name.endswith("null.keyring")


def _is_plaintext(backend) -> bool:
    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    return "plaintext" in name


def detect_keyring():
    """The keyring backend to use, or None for the secrets file."""
    try:
        import keyring
        import keyring.core
        from keyring.backends import chainer
    except Exception:  # noqa: BLE001 - not installed or broken: the file
        return None
    try:
        explicit = keyring.core.load_env() or keyring.core.load_config()
    except Exception as exc:  # noqa: BLE001 - a misconfigured choice: say so, use the file
        log.warning("The keyring backend configured for this user cannot be loaded (%s); "
                    "the token is kept in the secrets file instead.", type(exc).__name__)
        return None
    if explicit is not None:
        return None if _is_placeholder(explicit) else explicit
    try:
        detected = keyring.get_keyring()
    except Exception:  # noqa: BLE001
        return None
    candidates = (list(detected.backends) if isinstance(detected, chainer.ChainerBackend)
                  else [detected])
    usable = [b for b in candidates if not _is_placeholder(b) and not _is_plaintext(b)
              and getattr(b, "priority", 1) > 0]
    # The best one directly, not a chain: a chain would fall back to a plaintext file
    # silently when the real keyring is locked.
    return max(usable, key=lambda b: b.priority) if usable else None


class CredentialStore:
    """``get/set/delete`` a token per server host. ``location`` says where tokens go.

    ``keyring_backend``: a keyring backend to use instead of the detected one (tests; the
    detected one when None). ``use_keyring=False``: always the file."""

    def __init__(self, config_dir: Path, *, use_keyring: bool = True, keyring_backend=None):
        self.path = Path(config_dir) / SECRETS_FILE
        if not use_keyring:
            self._keyring = None
        else:
            self._keyring = keyring_backend if keyring_backend is not None else detect_keyring()

    @property
    def uses_keyring(self) -> bool:
        return self._keyring is not None

    @property
    def location(self) -> str:
        if self._keyring is not None:
            return f"the system keyring ({self._keyring.name})"
        return self._file_location

    def get(self, server: str) -> str | None:
        return self.lookup(server)[0]

    def lookup(self, server: str) -> tuple[str | None, str | None]:
        """(token, where it is kept, in words) for ``server``; (None, None) if none."""
        key = token_key(server)
        value = self._keyring_get(key)
        if value:
            return value, self.location
        tokens = self._read_file()
        if tokens.get(key):
            return tokens[key], self._file_location
        # saved by an older version under the full address: move it to the host key
        legacy = self._keyring_get(server) if server != key else None
        if legacy is None:
            legacy = next((v for k, v in tokens.items() if v and token_key(k) == key), None)
        if not legacy:
            return None, None
        where = self.set(server, legacy)
        if self._keyring is not None and server != key:
            try:
                self._keyring.delete_password(KEYRING_SERVICE, server)
            except Exception:  # noqa: BLE001 - it was in the file
                pass
        return legacy, where

    @property
    def _file_location(self) -> str:
        return f"{self.path} (readable only by you)"

    def set(self, server: str, token: str) -> str:
        """Store ``token`` for the host of ``server``; returns where it went, in words."""
        token = (token or "").strip()
        if not token:
            self.delete(server)
            return "nowhere (the token was empty, so the saved one was removed)"
        key = token_key(server)
        if self._keyring is not None:
            try:
                self._keyring.set_password(KEYRING_SERVICE, key, token)
            except Exception as exc:  # noqa: BLE001 - a locked keyring: the file
                log.warning("The system keyring refused the token (%s); storing it in %s.",
                            type(exc).__name__, self.path)
            else:
                self._remove_from_file(key)
                return self.location
        data = {k: v for k, v in self._read_file().items() if token_key(k) != key}
        data[key] = token
        self._write_file(data)
        return self._file_location

    def delete(self, server: str) -> None:
        key = token_key(server)
        if self._keyring is not None:
            for name in {key, server}:
                try:
                    self._keyring.delete_password(KEYRING_SERVICE, name)
                except Exception:  # noqa: BLE001 - nothing stored there
                    pass
        self._remove_from_file(key)

    # ---- helpers --------------------------------------------------------------------------
    def _keyring_get(self, name: str) -> str | None:
        if self._keyring is None:
            return None
        try:
            return self._keyring.get_password(KEYRING_SERVICE, name) or None
        except Exception as exc:  # noqa: BLE001 - a locked keyring: try the file
            log.warning("The system keyring could not be read (%s).", type(exc).__name__)
            return None

    def _remove_from_file(self, key: str) -> None:
        data = self._read_file()
        kept = {k: v for k, v in data.items() if token_key(k) != key}
        if kept != data:
            self._write_file(kept)

    def _read_file(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("The secrets file %s could not be read (%s).", self.path,
                        type(exc).__name__)
            return {}
        tokens = raw.get("remote_tokens", {}) if isinstance(raw, dict) else {}
        return {str(k): str(v) for k, v in tokens.items() if isinstance(v, str)}

    def _write_file(self, tokens: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600, so the secret is never readable by others, not even
        # for a moment; os.replace keeps those permissions.
        fd, tmp = tempfile.mkstemp(prefix=".secrets-", dir=self.path.parent)
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"remote_tokens": tokens}, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
