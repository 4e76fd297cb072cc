"""Shared fixtures. Tests use real parts: a real SQLite file, real images, real Qt widgets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# No test (nor a subprocess one starts) ever reads or writes the user's real keyring: tests
# that need a keyring configure a file-backed one of their own.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

REPO = Path(__file__).resolve().parent.parent
SHARED_IMAGES = REPO.parent / "shared" / "trap-images"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """No test ever touches the real user's settings, database or models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TRAPGUI_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("TRAPGUI_DATA_DIR", str(home / "data"))
    monkeypatch.delenv("TRAPGUI_DB", raising=False)
    yield


@pytest.fixture(scope="session")
def shared_images() -> Path:
    if not SHARED_IMAGES.is_dir():
        pytest.fail(f"shared trap images not found at {SHARED_IMAGES} (../shared beside the repo)")
    return SHARED_IMAGES


@pytest.fixture(scope="session")
def small_trap_images(tmp_path_factory, shared_images) -> Path:
    """Downscaled copies (longest side 1024) of all shared images, same folders, names and EXIF."""
    from tests.image_files import save_downscaled

    out = tmp_path_factory.mktemp("small-trap")
    for src in sorted(shared_images.rglob("*")):
        if not src.is_file() or src.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        dst = out / src.relative_to(shared_images)
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_downscaled(src, dst, 1024, keep_mtime=True)
    return out


@pytest.fixture
def trap_copy(tmp_path, small_trap_images) -> Path:
    """A writable copy of the downscaled trap images for tests that change files."""
    dst = tmp_path / "trap"
    shutil.copytree(small_trap_images, dst)
    return dst


@pytest.fixture
def db(tmp_path):
    from trapgui.db import open_database

    database = open_database(tmp_path / "catalogue.sqlite3")
    yield database
    database.close()
