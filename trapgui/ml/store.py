"""The model store: published weights and label maps in the user data folder.

Layout: ``models_dir/<key>/<published file name>`` for the weights and the label map, a
``.part`` file (+ ``.part.json``) while downloading, and ``models_dir/pins.json`` with the
sha256 and size of every file verified once. No checksums are published for the AMI models, so
the first verified copy is pinned: a later download or verify that differs is refused.
A file is installed only after it loaded strictly into its architecture (temp file, then an
atomic ``os.replace``), so a half-downloaded or wrong file never looks installed.
"""

from __future__ import annotations

import enum
import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trapgui.core.errors import DownloadError, ModelError, ModelNotInstalledError
from trapgui.ml import download as dl
from trapgui.ml.architectures_weights import (build_with_weights, read_label_map,
                                              sniff_weights_file)
from trapgui.ml.model_catalogue import ModelCatalogue, ModelSpec, load_model_catalogue
from trapgui.ml.store_pins import PinFile

ProgressFn = Callable[[int, "int | None"], None]


class ModelState(str, enum.Enum):
    INSTALLED = "installed"
    NOT_INSTALLED = "not installed"
    PARTIAL = "partly downloaded"  # a .part file waits to be resumed
    CORRUPT = "corrupt"


@dataclass
class ModelStatus:
    key: str
    name: str
    state: ModelState
    size_bytes: int | None  # on disk when installed, else the expected download size
    downloaded_bytes: int = 0  # bytes of an unfinished download (resumable)
    problem: str | None = None  # why it is corrupt, as a sentence
    weights_path: Path | None = None
    labels_path: Path | None = None

    @property
    def installed(self) -> bool:
        return self.state is ModelState.INSTALLED


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


class ModelStore:
    def __init__(self, models_dir: str | os.PathLike, model_catalogue: ModelCatalogue | None = None, *,
                 session=None, timeout: tuple[float, float] = (10.0, 60.0), retries: int = 4,
                 backoff_s: float = 1.0, download_deadline_s: float | None = dl.DEFAULT_DEADLINE_S,
                 download_stall_s: float | None = dl.STALL_S):
        self.models_dir = Path(models_dir)
        self.model_catalogue = model_catalogue or load_model_catalogue()
        self.session = session
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.download_deadline_s = download_deadline_s  # per file, retries included
        self.download_stall_s = download_stall_s  # less than 64 kB in this long: resume
        self.pins = PinFile(self.models_dir)
        self._lock = threading.Lock()
        self._busy: dict[str, dl.PartLock] = {}

    # ---- paths -------------------------------------------------------------------------
    def spec(self, key: str) -> ModelSpec:
        return self.model_catalogue.get(key)

    def weights_path(self, key: str) -> Path | None:
        spec = self.spec(key)
        return self.models_dir / key / spec.weights_filename if spec.needs_weights else None

    def labels_path(self, key: str) -> Path | None:
        spec = self.spec(key)
        return self.models_dir / key / spec.labels_filename if spec.labels_url else None

    @staticmethod
    def part_path(final: Path) -> Path:
        return final.with_name(final.name + ".part")

    # ---- pins --------------------------------------------------------------------------
    def _url(self, key: str, kind: str) -> str | None:
        spec = self.spec(key)
        return spec.weights_url if kind == "weights" else spec.labels_url

    def pin_for(self, key: str, kind: str) -> dict | None:
        """The pinned record of ``kind`` ("weights" | "labels") if it is for the current URL."""
        return self.pins.get(key, kind, self._url(key, kind))

    def _pin(self, key: str, kind: str, path: Path, sha256: str) -> None:
        """Pin a verified file unless a checksum is published or a pin already exists."""
        spec = self.spec(key)
        published = spec.sha256 if kind == "weights" else spec.labels_sha256
        if not published and self.pin_for(key, kind) is None:
            self.pins.set(key, kind, path, sha256, self._url(key, kind))

    def forget_pin(self, key: str) -> None:
        self.pins.forget(key)

    def _expected_sha(self, key: str, kind: str) -> tuple[str | None, str]:
        spec = self.spec(key)
        published = spec.sha256 if kind == "weights" else spec.labels_sha256
        if published:
            return published.lower(), "published"
        pin = self.pin_for(key, kind)
        return (pin["sha256"], f"verified on {pin.get('verified_at', '?')[:10]}") if pin else (None, "")

    def _check_sha(self, key: str, kind: str, sha: str, filename: str,
                   outcome: str = "it was not installed") -> None:
        expected, source = self._expected_sha(key, kind)
        if expected is None or expected == sha:
            return
        if source == "published":
            raise DownloadError(f"{filename} does not match its published checksum "
                                f"(expected {expected[:12]}..., got {sha[:12]}...); {outcome}.")
        raise DownloadError(
            f"{filename} differs from the copy trapgui verified ({source}): the file may have "
            f"been replaced or tampered with, so {outcome} (sha256 {sha[:12]}... "
            f"instead of {expected[:12]}...).",
            hint=f"If the publisher updated it on purpose, run `trapgui models remove {key} "
                 "--forget-pin` and install it again.")

    # ---- status ------------------------------------------------------------------------
    def status(self, key: str) -> ModelStatus:
        """Cheap: existence, sizes against the pins, file type sniffing; no hashing."""
        spec = self.spec(key)
        if not spec.needs_weights:
            return ModelStatus(key, spec.name, ModelState.INSTALLED, 0)
        weights, labels = self.weights_path(key), self.labels_path(key)
        base = dict(weights_path=weights, labels_path=labels)
        if not weights.exists():
            part = self.part_path(weights)
            done = part.stat().st_size if part.exists() else 0
            state = ModelState.PARTIAL if done else ModelState.NOT_INSTALLED
            return ModelStatus(key, spec.name, state, spec.size_bytes, done, **base)
        size = weights.stat().st_size + (labels.stat().st_size if labels and labels.exists() else 0)
        problem = self._quick_problem(key, weights, labels)
        state = ModelState.CORRUPT if problem else ModelState.INSTALLED
        return ModelStatus(key, spec.name, state, size, problem=problem, **base)

    def _quick_problem(self, key: str, weights: Path, labels: Path | None) -> str | None:
        if labels is not None and not labels.exists():
            return f"its label map {labels.name} is missing; download or import it again."
        for kind, path in (("weights", weights), ("labels", labels)):
            pin = self.pin_for(key, kind) if path is not None else None
            if pin and pin.get("size") != path.stat().st_size:
                return (f"{path.name} has changed since it was verified ({path.stat().st_size} "
                        f"bytes instead of {pin.get('size')}); download or import it again.")
        sniff = sniff_weights_file(weights)
        if sniff:
            return f"{weights.name} cannot be used: {sniff}."
        return None

    def statuses(self) -> list[ModelStatus]:
        return [self.status(spec.key) for spec in self.model_catalogue]

    def is_installed(self, key: str) -> bool:
        return self.status(key).installed

    def labels(self, key: str) -> list[str]:
        path = self.labels_path(key)
        if path is None:
            return []
        if not path.exists():
            raise ModelNotInstalledError(key, self.spec(key).name)
        return read_label_map(path)

    def require_installed(self, key: str) -> ModelStatus:
        status = self.status(key)
        if status.state in (ModelState.NOT_INSTALLED, ModelState.PARTIAL):
            raise ModelNotInstalledError(key, status.name)
        if status.state is ModelState.CORRUPT:
            raise ModelError(f"The model '{status.name}' ({key}) is damaged: {status.problem}")
        return status

    # ---- validation --------------------------------------------------------------------
    def _check_requirements(self, spec: ModelSpec) -> None:
        missing = spec.missing_requirements()
        if missing:
            raise ModelError(f"'{spec.name}' needs the Python package(s) {', '.join(missing)}, "
                             "which are not installed.",
                             hint=f"Install with: pip install {' '.join(missing)}")

    def _validate_labels(self, spec: ModelSpec, path: Path, shown: str | None = None) -> list[str]:
        shown = shown or path.name
        labels = read_label_map(path, shown)
        if spec.num_classes is not None and len(labels) != spec.num_classes:
            raise ModelError(f"The label map {shown} has {len(labels)} labels but "
                             f"'{spec.name}' has {spec.num_classes} classes: it is not this "
                             "model's label map.")
        return labels

    def _validate_weights(self, spec: ModelSpec, path: Path, labels: list[str] | None,
                          shown: str | None = None) -> None:
        """Build the architecture and load the file strictly (raises ModelError)."""
        n = len(labels) if labels is not None else (spec.num_classes or 2)
        build_with_weights(spec.architecture, spec.name, path, n,
                           labels_count=len(labels) if labels is not None else None,
                           display_name=shown or path.name)

    def verify(self, key: str) -> ModelStatus:
        """Full check: checksums against the published or pinned ones, the label map, and a
        strict load into the architecture. Pins files that had no pin yet."""
        spec = self.spec(key)
        status = self.status(key)
        if not spec.needs_weights:
            return status
        if status.state in (ModelState.NOT_INSTALLED, ModelState.PARTIAL):
            raise ModelNotInstalledError(key, spec.name)
        if status.state is ModelState.CORRUPT:
            return status
        self._check_requirements(spec)
        weights, labels_file = self.weights_path(key), self.labels_path(key)
        try:
            shas = {"weights": sha256_file(weights)}
            if labels_file is not None:
                shas["labels"] = sha256_file(labels_file)
            for kind, sha in shas.items():
                self._check_sha(key, kind, sha, (weights if kind == "weights" else labels_file).name,
                                "do not use it: download or import it again")
            labels = self._validate_labels(spec, labels_file) if labels_file else None
            self._validate_weights(spec, weights, labels)
        except ModelError as exc:
            status.state, status.problem = ModelState.CORRUPT, str(exc)
            return status
        for kind, sha in shas.items():
            self._pin(key, kind, weights if kind == "weights" else labels_file, sha)
        return self.status(key)

    # ---- download ----------------------------------------------------------------------
    def _claim(self, key: str) -> None:
        try:
            (self.models_dir / key).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(f"Cannot create the model folder {self.models_dir / key} "
                             f"({exc.strerror or exc}).",
                             hint="Check that the data folder is writable (see --data-dir).") from exc
        busy = ModelError(f"'{self.spec(key).name}' is already being downloaded or imported "
                          "(here or by another trapgui window or terminal).",
                          hint="Wait for it to finish, then try again.")
        with self._lock:
            if key in self._busy:
                raise busy
            lock = dl.PartLock(self.models_dir / key / ".lock")
            if not lock.acquire():
                raise busy
            self._busy[key] = lock

    def _release(self, key: str) -> None:
        with self._lock:
            lock = self._busy.pop(key, None)
        if lock is not None:
            lock.release()

    def download(self, key: str, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, force: bool = False) -> ModelStatus:
        """Download (or resume) the weights and label map, verify, install atomically.

        ``progress(done_bytes, total_bytes_or_None)`` over both files. ``cancel`` (an Event)
        stops within a fraction of a second, even on a stalled connection, with
        DownloadCancelled; the .part file stays for a resume."""
        spec = self.spec(key)
        if not spec.needs_weights:
            return self.status(key)
        self._check_requirements(spec)
        self._claim(key)
        try:
            return self._download(spec, progress, cancel, force)
        except OSError as exc:  # not a network error (those are DownloadErrors): the disk
            raise DownloadError(f"Could not write '{spec.name}' into {self.models_dir / key} "
                                f"({exc.strerror or exc}).",
                                hint="Check the free disk space and that the data folder is "
                                "writable (see --data-dir).") from exc
        finally:
            self._release(key)

    def _download(self, spec, progress, cancel, force) -> ModelStatus:
        key = spec.key
        weights, labels_file = self.weights_path(key), self.labels_path(key)
        weights.parent.mkdir(parents=True, exist_ok=True)
        offset = [0]

        def report(done, total):
            if progress:
                progress(offset[0] + done, None if total is None else offset[0] + total)

        labels = None
        if labels_file is not None:
            if force or not labels_file.exists():
                self._fetch_verified(spec, "labels", labels_file, report, cancel,
                                     lambda p: self._validate_labels(spec, p, labels_file.name))
            labels = self._validate_labels(spec, labels_file)
            offset[0] = labels_file.stat().st_size
        if force or self.status(key).state is not ModelState.INSTALLED:
            self._check_disk_space(spec, weights)
            self._fetch_verified(spec, "weights", weights, report, cancel,
                                 lambda p: self._validate_weights(spec, p, labels, weights.name))
        return self.status(key)

    def _check_disk_space(self, spec: ModelSpec, weights: Path) -> None:
        if not spec.size_bytes:
            return
        part = self.part_path(weights)
        need = spec.size_bytes - (part.stat().st_size if part.exists() else 0)
        free = shutil.disk_usage(weights.parent).free
        if need > free:
            raise DownloadError(f"Not enough disk space for '{spec.name}': it needs "
                                f"{need / 1e6:.0f} MB and {weights.parent} has {free / 1e6:.0f} MB free.")

    def _fetch_verified(self, spec, kind, final: Path, report, cancel, validate) -> None:
        url = spec.weights_url if kind == "weights" else spec.labels_url
        part = self.part_path(final)
        result = dl.fetch(url, part, name=final.name, session=self.session, progress=report,
                          cancel=cancel, timeout=self.timeout, retries=self.retries,
                          backoff_s=self.backoff_s, deadline_s=self.download_deadline_s,
                          stall_s=self.download_stall_s)
        try:
            if kind == "weights":
                problem = sniff_weights_file(part)
                if problem:
                    raise DownloadError(f"The server sent something other than {final.name}: "
                                        f"{problem}.")
            self._check_sha(spec.key, kind, result.sha256, final.name)
            validate(part)
        except ModelError:
            dl.discard_partial(part)  # complete but wrong: resuming it would not help
            raise
        os.replace(part, final)
        dl.discard_partial(part)
        self._pin(spec.key, kind, final, result.sha256)

    # ---- import / remove ---------------------------------------------------------------
    def import_file(self, key: str, path: str | os.PathLike,
                    labels_path: str | os.PathLike | None = None) -> ModelStatus:
        """Install weights (and a label map) from local files, for computers without internet.
        The files are checked (published/pinned checksum, strict load) before they are used."""
        spec = self.spec(key)
        if not spec.needs_weights:
            raise ModelError(f"'{spec.name}' needs no weights file.")
        self._check_requirements(spec)
        src = Path(path)
        if not src.is_file():
            raise ModelError(f"The file {src} does not exist.")
        self._claim(key)
        temps: list[Path] = []
        try:
            return self._import(spec, src, Path(labels_path) if labels_path else None, temps)
        finally:
            for tmp in temps:  # only left over when something was refused
                tmp.unlink(missing_ok=True)
            self._release(key)

    def _import(self, spec: ModelSpec, src: Path, labels_src: Path | None,
                temps: list[Path]) -> ModelStatus:
        key = spec.key
        weights, labels_final = self.weights_path(key), self.labels_path(key)
        weights.parent.mkdir(parents=True, exist_ok=True)
        labels = labels_tmp = labels_sha = None
        if labels_final is not None:
            if labels_src is not None:
                labels_tmp = self._copy_in(labels_src, labels_final, temps)
                labels_sha = sha256_file(labels_tmp)
                self._check_sha(key, "labels", labels_sha, labels_final.name)
                labels = self._validate_labels(spec, labels_tmp, labels_src.name)
            elif labels_final.exists():
                labels = self._validate_labels(spec, labels_final)
            else:
                raise ModelError(f"'{spec.name}' also needs its label map ({labels_final.name}).",
                                 hint="Pass it with --labels FILE (or download the model).")
        weights_tmp = self._copy_in(src, weights, temps)
        problem = sniff_weights_file(weights_tmp)
        if problem:  # before the checksum: "it is a web page" says more than "it differs"
            raise ModelError(f"The file {src.name} cannot be used: {problem}.")
        sha = sha256_file(weights_tmp)
        self._check_sha(key, "weights", sha, src.name)
        self._validate_weights(spec, weights_tmp, labels, src.name)
        if labels_tmp is not None:
            os.replace(labels_tmp, labels_final)
            self._pin(key, "labels", labels_final, labels_sha)
        os.replace(weights_tmp, weights)
        self._pin(key, "weights", weights, sha)
        dl.discard_partial(self.part_path(weights))
        return self.status(key)

    def _copy_in(self, src: Path, final: Path, temps: list[Path]) -> Path:
        if not src.is_file():
            raise ModelError(f"The file {src} does not exist.")
        tmp = final.with_name(f".{final.name}.import-{os.getpid()}")
        temps.append(tmp)
        try:
            shutil.copyfile(src, tmp)
        except OSError as exc:
            raise ModelError(f"Could not copy {src} into the model folder ({exc.strerror or exc}).") from exc
        return tmp

    def remove(self, key: str, forget_pin: bool = False) -> int:
        """Delete the model's files (and unfinished downloads); returns the bytes freed.
        The pin is kept unless ``forget_pin``: a re-download must match the verified copy."""
        spec = self.spec(key)
        if not spec.needs_weights:
            raise ModelError(f"'{spec.name}' is built in and cannot be removed.")
        folder = self.models_dir / key
        freed = 0
        self._claim(key)  # never pull files from under a running download
        try:
            for path in folder.iterdir():
                if path.is_file() and path.name != ".lock":
                    freed += path.stat().st_size
                    path.unlink()
        finally:
            self._release(key)
        try:
            folder.rmdir()
        except OSError:
            pass  # something the user put there: leave it
        if forget_pin:
            self.forget_pin(key)
        return freed
