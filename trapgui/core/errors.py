"""Errors that carry a message meant for the user (shown in the GUI and the CLI as-is)."""

from __future__ import annotations


class TrapguiError(Exception):
    """Base class: ``str(err)`` is a complete sentence a researcher can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UserInputError(TrapguiError):
    """A bad path, flag or value given by the user."""

    exit_code = 2


class DatabaseError(TrapguiError):
    """The catalogue database cannot be opened or used (corrupt, locked, newer schema...)."""

    exit_code = 3


class ModelError(TrapguiError):
    """A model is missing, corrupt, or does not match its architecture."""

    exit_code = 4


class ModelNotInstalledError(ModelError):
    def __init__(self, key: str, name: str | None = None):
        label = f"'{name}' ({key})" if name else f"'{key}'"
        super().__init__(
            f"The model {label} is not installed.",
            hint=f"Download it with `trapgui models download {key}` (in the app: Tools ▸ "
            "Models…), or import the weights file if this computer is offline.",
        )
        self.key = key


class DownloadError(ModelError):
    """A download failed (network, HTTP status, checksum)."""


class DownloadCancelled(ModelError):
    def __init__(self, message: str = "The download was cancelled."):
        super().__init__(message)


class RemoteError(TrapguiError):
    """The remote job server refused or failed a request."""

    exit_code = 5


class AuthenticationError(RemoteError):
    """The server rejected the token (HTTP 401/403): retrying will not help."""


class Cancelled(TrapguiError):
    """A long operation was cancelled by the user."""

    def __init__(self, message: str = "Cancelled."):
        super().__init__(message)
