"""User settings, stored as JSON in the platform's config folder.

Unknown keys are kept (a newer version's settings survive an older one), bad values fall back
to defaults with a warning rather than stopping the app.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trapgui.core.errors import UserInputError
from trapgui.core.tracking_params import TrackingParams

log = logging.getLogger(__name__)

CLUSTER_MODES = ("off", "address", "local", "slurm", "pbs")
# a folder whose subfolders are different trap sites: ask (the window asks each time), or the
# remembered answer: one trap per site subfolder, or one trap for everything
SITE_SUBFOLDER_CHOICES = ("ask", "subfolders", "one")


@dataclass
class Settings:
    # models (catalogue keys, see resources/models.json); None = step not run
    detector: str = "builtin"
    binary_classifier: str | None = "moth_binary_resnet50_2024"
    species_classifier: str | None = None
    order_classifier: str | None = None
    # processing
    device: str = "auto"  # "auto", "cpu", "cuda:0", "mps", ...
    # True: batch sizes measured per device and model on first use (cached in the data
    # folder); False: the two sizes below
    auto_batch_sizes: bool = True
    detection_batch_size: int = 4
    classification_batch_size: int = 64
    # detector scores: boxes below the storage floor are not stored, stored boxes below the
    # classification floor are classified only on demand; None = the detector's defaults
    # (model catalogue). Both change what is stored (a new model configuration).
    storage_floor: float | None = None
    classification_floor: float | None = None
    loader_threads: int = 2
    top_k: int = 5
    # thresholds (all scores are stored, so these only filter views and exports)
    detection_threshold: float = 0.5
    classification_threshold: float = 0.5
    # catalogue
    night_cutoff_hour: int = 12
    data_dir: str | None = None
    db_path: str | None = None
    recent_folders: list[str] = field(default_factory=list)
    site_subfolders: str = "ask"  # SITE_SUBFOLDER_CHOICES
    # remote jobs (the token itself lives in the OS keyring, or the secrets file)
    remote_base_url: str = "https://antenna.insectai.org/api/v2"
    remote_pipelines: list[str] = field(default_factory=list)
    remote_batch_size: int = 8
    remote_download_threads: int = 8
    remote_batch_timeout_s: float = 0.5
    remote_service_name: str = "trapgui"
    # None: each pipeline's own detector; e.g. "builtin" where the Faster R-CNN is not installed
    remote_detector: str | None = None
    # send the token over plain http:// to a host other than this computer (a trusted lab
    # network without https); off, the token goes only over https or to localhost
    remote_allow_insecure_http: bool = False
    # tracking (detections -> individuals): every TrackingParams field, see docs/tracking.md
    tracking: dict[str, Any] = field(default_factory=lambda: TrackingParams().to_dict())
    # processing on a Dask cluster: off (this computer), address (a running scheduler),
    # local (a cluster of worker processes here), slurm or pbs (dask-jobqueue batch jobs with
    # the settings of cluster_config_file, default <config folder>/cluster.toml)
    cluster_mode: str = "off"
    cluster_address: str = ""  # tcp://host:8786
    cluster_local_workers: int = 2
    cluster_config_file: str | None = None
    # review: the name recorded with every label a person gives (identifiedBy in exports)
    reviewer_name: str = ""
    # anything we do not know (written by a newer version) is round-tripped untouched
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> list[str]:
        """Problems a settings dialog should show; empty when valid."""
        problems = []
        if not 0 <= self.night_cutoff_hour <= 23:
            problems.append("Night cut-off hour must be between 0 and 23.")
        for name in ("detection_batch_size", "classification_batch_size", "loader_threads",
                     "top_k", "remote_batch_size", "remote_download_threads"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', ' ').capitalize()} must be at least 1.")
        for name in ("detection_threshold", "classification_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name.replace('_', ' ').capitalize()} must be between 0 and 1.")
        for name in ("storage_floor", "classification_floor"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0.0 <= value <= 1.0):
                problems.append(f"{name.replace('_', ' ').capitalize()} must be between 0 and 1 "
                                "(or empty for the detector's default).")
        if self.remote_batch_timeout_s < 0:
            problems.append("Remote batch timeout cannot be negative.")
        if self.site_subfolders not in SITE_SUBFOLDER_CHOICES:
            problems.append("Site subfolders must be one of "
                            f"{', '.join(SITE_SUBFOLDER_CHOICES)}.")
        if self.cluster_mode not in CLUSTER_MODES:
            problems.append(f"Cluster mode must be one of {', '.join(CLUSTER_MODES)}.")
        if self.cluster_local_workers < 1:
            problems.append("Local cluster workers must be at least 1.")
        if not self.remote_base_url.startswith(("http://", "https://")):
            problems.append("Server URL must start with http:// or https://.")
        try:
            self.tracking_params()
        except UserInputError as exc:
            problems.append(str(exc))
        return problems

    def tracking_params(self) -> TrackingParams:
        """The tracking group as the tracker takes it (defaults for keys not set); raises
        UserInputError for invalid values."""
        if not isinstance(self.tracking, dict):
            raise UserInputError("Invalid tracking settings: they must be a group of values.")
        defaults = TrackingParams().to_dict()
        for key, value in self.tracking.items():
            if key in defaults and not _same_kind(defaults[key], value):
                raise UserInputError(f"Invalid tracking settings: {key} must be "
                                     f"{type(defaults[key]).__name__}, not {value!r}.")
        return TrackingParams.from_dict(self.tracking)

    def add_recent_folder(self, folder: str, limit: int = 10) -> None:
        self.recent_folders = [folder] + [f for f in self.recent_folders if f != folder]
        del self.recent_folders[limit:]


def load_settings(path: Path) -> Settings:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("Settings file %s could not be read (%s); using defaults.", path, exc)
        return Settings()
    if not isinstance(raw, dict):
        return Settings()
    defaults = Settings()
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    extra = dict(raw.pop("extra", {}) or {})
    for key, value in raw.items():
        if key not in known:
            extra[key] = value
            continue
        if key == "tracking":  # a group: read key by key below
            continue
        default = getattr(defaults, key)
        if value is None and "None" not in str(known[key].type):
            log.warning("Setting %s is empty; using %r.", key, default)
            continue
        if default is not None and value is not None and not _same_kind(default, value):
            log.warning("Setting %s=%r has the wrong type; using %r.", key, value, default)
            continue
        # right type, but out of range (e.g. a cut-off hour of 30): checked one field at a time
        # against otherwise-default settings, so one bad value does not discard the others
        problems = Settings(**{key: value}).validate()
        if problems:
            log.warning("Setting %s=%r is invalid (%s); using %r.", key, value,
                        "; ".join(problems), default)
            continue
        values[key] = value
    if isinstance(raw.get("tracking"), dict):
        values["tracking"] = _tracking_group(raw["tracking"])
    return Settings(**values, extra=extra)


def _tracking_group(raw: dict) -> dict[str, Any]:
    """The file's tracking values over the defaults, one key at a time (a bad value falls
    back to its default alone); keys a newer version wrote are kept."""
    group = TrackingParams().to_dict()
    for key, value in raw.items():
        if key not in group:
            group[key] = value
            continue
        problems = Settings(tracking={**TrackingParams().to_dict(), key: value}).validate()
        if problems:
            log.warning("Tracking setting %s=%r is invalid (%s); using %r.", key, value,
                        "; ".join(problems), group[key])
            continue
        group[key] = value
    return group


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def save_settings(settings: Settings, path: Path) -> None:
    """Atomic write (temp file + rename) so a crash never leaves half a settings file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(settings)
    extra = data.pop("extra")
    data.update({k: v for k, v in extra.items() if k not in data})
    fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
