"""``models_dir/pins.json``: the sha256 and size of every model file trapgui verified once.

No checksums are published for the AMI models, so the first verified copy becomes the
reference ("trust on first use"): a later download, import or verify that differs is refused.
A pin belongs to a URL: when the catalogue moves a model to a new file, the old pin no longer
applies.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

PINS_FILE = "pins.json"


class PinFile:
    def __init__(self, models_dir: Path):
        self.path = Path(models_dir) / PINS_FILE
        self._lock = threading.Lock()

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or unreadable: nothing pinned (verify will pin again)
        return data if isinstance(data, dict) else {}

    def get(self, key: str, kind: str, url: str | None) -> dict | None:
        """The record for ``kind`` ("weights" | "labels") of ``key`` if pinned for ``url``."""
        entry = self.read().get(key)
        rec = entry.get(kind) if isinstance(entry, dict) else None
        return rec if isinstance(rec, dict) and rec.get("url") == url else None

    def set(self, key: str, kind: str, file: Path, sha256: str, url: str | None) -> None:
        record = {"file": file.name, "sha256": sha256, "size": file.stat().st_size, "url": url,
                  "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self._lock:
            pins = self.read()
            pins.setdefault(key, {})[kind] = record
            self._write(pins)

    def forget(self, key: str) -> bool:
        with self._lock:
            pins = self.read()
            if pins.pop(key, None) is None:
                return False
            self._write(pins)
            return True

    def _write(self, pins: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pins-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(pins, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
