"""Where the remote-jobs token is kept.

The OS keyring when the optional ``keyring`` package is installed and has a real backend
(not the "fail" or plaintext ones); otherwise ``secrets.json`` in the config folder, written
with owner-only permissions (0600) before any secret goes into it. Tokens are keyed by server
address, so a test server and the real one do not overwrite each other.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

KEYRING_SERVICE = "trapgui-remote"
SECRETS_FILE = "secrets.json"


def _usable_keyring():
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # noqa: BLE001 - not installed or broken: fall back to the file
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001
        return None
    name = type(backend).__module__ + "." + type(backend).__name__
    if isinstance(backend, fail.Keyring) or "plaintext" in name.lower() or "null" in name.lower():
        return None
    if getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


class CredentialStore:
    """``get/set/delete`` a token per server address. ``location`` says where it went."""

    def __init__(self, config_dir: Path, *, use_keyring: bool = True):
        self.path = Path(config_dir) / SECRETS_FILE
        self._keyring = _usable_keyring() if use_keyring else None

    @property
    def location(self) -> str:
        return "the system keyring" if self._keyring else f"{self.path} (readable only by you)"

    def get(self, server: str) -> str | None:
        if self._keyring is not None:
            try:
                value = self._keyring.get_password(KEYRING_SERVICE, server)
                if value:
                    return value
            except Exception as exc:  # noqa: BLE001 - a locked keyring: try the file
                log.warning("The system keyring could not be read (%s).", type(exc).__name__)
        return self._read_file().get(server)

    def set(self, server: str, token: str) -> None:
        if not token:
            self.delete(server)
            return
        if self._keyring is not None:
            try:
                self._keyring.set_password(KEYRING_SERVICE, server, token)
                self._remove_from_file(server)
                return
            except Exception as exc:  # noqa: BLE001
                log.warning("The system keyring refused the token (%s); storing it in %s.",
                            type(exc).__name__, self.path)
        data = self._read_file()
        data[server] = token
        self._write_file(data)

    def delete(self, server: str) -> None:
        if self._keyring is not None:
            try:
                self._keyring.delete_password(KEYRING_SERVICE, server)
            except Exception:  # noqa: BLE001 - nothing stored there
                pass
        self._remove_from_file(server)

    def _remove_from_file(self, server: str) -> None:
        data = self._read_file()
        if server in data:
            del data[server]
            self._write_file(data)

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
