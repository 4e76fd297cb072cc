"""What a processing process is working on, kept on disk beside the catalogue, so that the next
run can tell an interruption (killed, power cut, closed lid, force-quit) from an image that
crashes the program.

Two files per process in ``<catalogue>.runs/``: ``<host>-<pid>.json`` lists the jobs being
decoded and on the device right now (rewritten atomically at each change: a few per batch),
and ``<host>-<pid>.crash`` receives ``faulthandler``'s report when the process dies of a
fatal signal of its own (a segfault in a decoder, an abort in a native library). A process
that stops cleanly removes both. The run that takes over a dead process's work reads them:
a crash report means the jobs in flight are suspects; no report means it was stopped from
outside and nobody is blamed (see ``db.jobqueue.charge_interrupted``).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STAGES = ("decoding", "device")


@dataclass(frozen=True)
class Evidence:
    """What a dead process left behind."""

    crashed: bool  # it died of a fatal signal of its own
    in_flight: frozenset[int] = field(default_factory=frozenset)  # job ids
    report: str = ""  # the first line of the crash report, for the job's reason

    @property
    def known(self) -> bool:
        return bool(self.in_flight) or self.crashed


def _folder(db_path: Path) -> Path:
    return Path(db_path).with_name(Path(db_path).name + ".runs")


def _files(db_path: Path, host: str, pid: int) -> tuple[Path, Path]:
    stem = f"{host}-{pid}"
    folder = _folder(db_path)
    return folder / f"{stem}.json", folder / f"{stem}.crash"


class FlightRecorder:
    def __init__(self, db_path: Path, host: str, pid: int | None = None):
        self.state_file, self.crash_file = _files(db_path, host, pid or os.getpid())
        self._jobs: dict[str, set[int]] = {stage: set() for stage in STAGES}
        self._lock = threading.Lock()
        self._crash_fh = None
        self._had_faulthandler = False

    def open(self) -> "FlightRecorder":
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self._crash_fh = open(self.crash_file, "w", encoding="utf-8")
            self._had_faulthandler = faulthandler.is_enabled()
            faulthandler.enable(file=self._crash_fh, all_threads=True)
            self._write()
        except OSError as exc:  # a read-only folder: run without crash evidence
            log.warning("Crash evidence is not recorded (%s).", exc)
            self._crash_fh = None
        return self

    def mark(self, stage: str, job_ids: Iterable[int], flying: bool) -> None:
        """``job_ids`` enter (``flying``) or leave ``stage`` (decoding, device)."""
        if self._crash_fh is None:
            return
        with self._lock:
            jobs = self._jobs[stage]
            (jobs.update if flying else jobs.difference_update)(job_ids)
            self._write()

    def close(self) -> None:
        if self._crash_fh is None:
            return
        if self._had_faulthandler and sys.__stderr__ is not None:
            faulthandler.enable(file=sys.__stderr__, all_threads=True)
        else:
            faulthandler.disable()
        self._crash_fh.close()
        self._crash_fh = None
        for path in (self.state_file, self.crash_file):
            path.unlink(missing_ok=True)

    def _write(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({s: sorted(j) for s, j in self._jobs.items()}),
                           encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("Could not record the jobs in flight (%s).", exc)

    # -- for the run that takes over ------------------------------------------------------
    @staticmethod
    def examine(db_path: Path, host: str, pid: int) -> Evidence:
        state_file, crash_file = _files(db_path, host, pid)
        in_flight: set[int] = set()
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            for stage in STAGES:
                in_flight.update(int(j) for j in state.get(stage, ()))
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        report = ""
        try:
            report = crash_file.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            pass
        first = report.splitlines()[0] if report else ""
        return Evidence(crashed=bool(report), in_flight=frozenset(in_flight), report=first)

    @staticmethod
    def discard(db_path: Path, host: str, pid: int) -> None:
        for path in _files(db_path, host, pid):
            path.unlink(missing_ok=True)

    @staticmethod
    def recorded_pids(db_path: Path, host: str) -> list[int]:
        """Processes of this host that left files (dead or alive)."""
        folder = _folder(db_path)
        prefix = f"{host}-"
        pids = set()
        try:
            for path in folder.iterdir():
                name = path.name
                if name.startswith(prefix) and path.suffix in (".json", ".crash"):
                    tail = name[len(prefix):].split(".", 1)[0]
                    if tail.isdigit():
                        pids.add(int(tail))
        except OSError:
            pass
        return sorted(pids)
