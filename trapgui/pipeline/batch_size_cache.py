"""The batch sizes measured on this computer, per device and model, kept in the data folder
(``batch_sizes.json``) so that the measurement (``pipeline.batch_tuning``) runs once.

Pure Python (no torch): the Settings dialog lists the entries without loading any model.
An entry is valid for one device (its name and thread count), one model (catalogue key and
input), one torch version: a new GPU, a torch upgrade or another thread count measures again.
A damaged or unreadable file is treated as empty (the measurement simply runs again), and so
is one in an older format (format 1 chose by speed alone, without the memory of each size).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_FILE = "batch_sizes.json"
CACHE_FORMAT = 2
_LOCK = threading.Lock()  # one writer per process; os.replace keeps the file whole across processes


@dataclass(frozen=True)
class TunedEntry:
    """One measured batch size, as the Settings dialog and the run record show it."""

    device: str  # "cpu (Intel Xeon ..., 2 threads)", "cuda:0 (NVIDIA ...)"
    model: str  # catalogue key
    role: str  # "detection" (images per batch) | "classification" (crops per batch)
    batch_size: int
    per_s: float  # images or crops per second at that batch size when measured
    measured_at: str  # ISO time, UTC
    measured: dict[str, float]  # batch size (as text) -> images or crops per second
    memory_mb: float | None = None  # one batch's peak memory at batch_size (None: not known)
    measured_memory: dict[str, float] = field(default_factory=dict)  # batch size -> MB
    memory_cap_mb: float | None = None  # the most a batch could take on that device

    @property
    def device_label(self) -> str:
        """Short: "cpu, 2 threads", "cuda:0 (NVIDIA RTX A5000, sm_86)"."""
        if self.device.startswith("cpu (") and self.device.endswith(")"):
            threads = self.device[:-1].rsplit(", ", 1)[-1]
            return f"cpu, {threads}"
        return self.device

    @property
    def unit(self) -> str:
        return "images" if self.role == "detection" else "crops"

    @property
    def memory_text(self) -> str:
        """ "240 MB a batch", or "" when the memory was not measured."""
        return "" if self.memory_mb is None else f"{self.memory_mb:.0f} MB a batch"

    def describe(self) -> str:
        memory = f", {self.memory_text}" if self.memory_text else ""
        return (f"{self.model}: {self.batch_size} {self.unit} per batch "
                f"({self.per_s:.1f} {self.unit}/s{memory})")


def default_cache_path() -> Path:
    from trapgui.config.paths import default_paths

    return default_paths().data_dir / CACHE_FILE


class BatchSizeCache:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_path()

    def _read(self) -> dict:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("The batch-size cache %s cannot be read (%s); measuring again.",
                        self.path, exc)
            return {}
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
            return {}
        entries = doc.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> TunedEntry | None:
        raw = self._read().get(key)
        return _entry(raw)

    def put(self, key: str, entry: TunedEntry) -> None:
        """Add or replace one entry (re-reading the file first: another process may have
        added its own meanwhile). A cache that cannot be written is not an error: the
        measurement runs again next time."""
        with _LOCK:
            entries = self._read()
            entries[key] = {"device": entry.device, "model": entry.model, "role": entry.role,
                            "batch_size": entry.batch_size, "per_s": entry.per_s,
                            "measured_at": entry.measured_at, "measured": entry.measured,
                            "memory_mb": entry.memory_mb,
                            "measured_memory": entry.measured_memory,
                            "memory_cap_mb": entry.memory_cap_mb}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".batch-sizes-", dir=self.path.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"format": CACHE_FORMAT, "entries": entries}, fh, indent=1,
                              sort_keys=True)
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("The batch-size cache %s cannot be written (%s).", self.path, exc)

    def entries(self, models: list[str] | None = None) -> list[TunedEntry]:
        """Every valid entry (of these model keys only, when given), by device then model."""
        out = [e for e in (_entry(raw) for raw in self._read().values()) if e is not None]
        if models is not None:
            wanted = set(models)
            out = [e for e in out if e.model in wanted]
        return sorted(out, key=lambda e: (e.device, e.role != "detection", e.model))

    def clear(self) -> None:
        with _LOCK:
            self.path.unlink(missing_ok=True)


def _entry(raw) -> TunedEntry | None:
    if not isinstance(raw, dict):
        return None
    try:
        size = int(raw["batch_size"])
        if size < 1:
            return None
        return TunedEntry(device=str(raw["device"]), model=str(raw["model"]),
                          role=str(raw["role"]), batch_size=size, per_s=float(raw["per_s"]),
                          measured_at=str(raw.get("measured_at", "")),
                          measured={str(k): float(v) for k, v in
                                    dict(raw.get("measured") or {}).items()},
                          memory_mb=_optional_mb(raw.get("memory_mb")),
                          measured_memory={str(k): float(v) for k, v in
                                           dict(raw.get("measured_memory") or {}).items()},
                          memory_cap_mb=_optional_mb(raw.get("memory_cap_mb")))
    except (KeyError, TypeError, ValueError):
        return None


def _optional_mb(value) -> float | None:
    return None if value is None else float(value)


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
