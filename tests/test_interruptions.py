"""Interruptions are not failures: a run killed from outside (power cut, closed lid, force-quit)
blames no image, however often it happens; an image that really crashes the program every time
is isolated and skipped with a reason, and its batch-mates are processed."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from tests.pipeline_helpers import make_tiny_trap
from trapgui.db import jobqueue, open_database
from trapgui.db.tables import Deployment, Detection, Job, ProcessingRun
from trapgui.db.tables import Image as ImageRow

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(1800)  # 20+ processes that import torch, on a busy machine


def _cmd(db_path, folder):
    return [sys.executable, "-m", "trapgui", "--db", str(db_path), "process", str(folder),
            "--classifier", "none", "--device", "cpu", "--batch-size", "2", "--quiet"]


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO))


def _results(db_path) -> dict[str, list[tuple]]:
    """rel path -> sorted boxes (rounded) and the job's state."""
    db = open_database(db_path)
    try:
        with db.session() as s:
            states = dict(s.execute(select(ImageRow.rel_path, Job.state).join(
                Job, Job.image_id == ImageRow.id)).all())
            rows = s.execute(select(ImageRow.rel_path, Detection.x1, Detection.y1,
                                    Detection.x2, Detection.y2, Detection.score)
                             .join(Detection, Detection.image_id == ImageRow.id)).all()
    finally:
        db.close()
    out: dict[str, list] = {rel: [state] for rel, state in states.items()}
    for rel, *box in rows:
        out[rel].append(tuple(round(v, 3) for v in box))
    return {rel: [v[0], *sorted(v[1:])] for rel, v in out.items()}


def test_twenty_sigkills_then_a_normal_run_give_the_uninterrupted_results(tmp_path):
    src = make_tiny_trap(tmp_path / "src", side=320, limit=12,
                         folders=("vermont", "sequential", "panama"))
    folder = tmp_path / "trap"
    for copy in range(2):  # 24 images: long enough a run for kills to land at random in it
        for f in sorted(src.glob("*.jpg")):
            dst = folder / f"c{copy}" / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst)
    reference = tmp_path / "reference.sqlite3"
    done = subprocess.run(_cmd(reference, folder), capture_output=True, text=True,
                          timeout=900, env=_env())
    assert done.returncode == 0, done.stderr
    db = open_database(reference)
    try:
        with db.session() as s:
            run = s.execute(select(ProcessingRun)).scalars().one()
            processing_s = (run.ended_at - run.started_at).total_seconds()
    finally:
        db.close()

    db_path = tmp_path / "killed.sqlite3"
    runs = db_path.with_name(db_path.name + ".runs")
    rng = random.Random(20)
    for _ in range(20):
        proc = subprocess.Popen(_cmd(db_path, folder), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=_env())
        # however slow the machine: wait until this process has work in flight, then kill it
        # at a random moment of its processing
        state = runs / f"{socket.gethostname()}-{proc.pid}.json"
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if any(json.loads(state.read_text()).values()):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        # a random moment of its processing: a quarter of the whole work at most, so that most
        # kills land mid-batch while each image is caught by only a few (an image stopped from
        # outside MAX_INTERRUPTIONS times is given up on, which is not what this tests)
        time.sleep(rng.uniform(0.0, processing_s / 4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    final = subprocess.run(_cmd(db_path, folder), capture_output=True, text=True, timeout=600,
                           env=_env())
    assert final.returncode == 0, final.stderr
    assert "failed in earlier runs" not in final.stdout
    got, want = _results(db_path), _results(reference)
    assert {rel: v[0] for rel, v in got.items()} == {rel: "done" for rel in want}
    assert got == want
    db = open_database(db_path)
    try:
        with db.session() as s:
            hit = sum(s.execute(select(Job.interruptions)).scalars())
    finally:
        db.close()
    assert hit >= 3, "the kills never landed while images were in flight: nothing was tested"


def test_an_image_that_crashes_the_program_is_isolated_and_skipped(tmp_path):
    folder = make_tiny_trap(tmp_path / "trap", side=200, limit=5,
                            folders=("vermont", "sequential"))
    victim = sorted(folder.glob("*.jpg"))[2]
    with Image.open(victim) as im:
        exif = im.info.get("exif", b"")
        im.resize((173, 130)).save(victim, quality=90, exif=exif)  # the poison: 173 px wide
    db_path = tmp_path / "catalogue.sqlite3"
    crashes = 0
    for _ in range(jobqueue.MAX_CRASHES + 3):
        proc = subprocess.run([sys.executable, "-m", "tests.crashing_engine", str(db_path),
                               str(folder), "173"], capture_output=True, text=True,
                              timeout=300, env=_env(), cwd=REPO)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGSEGV, proc.stderr
        crashes += 1
    else:
        raise AssertionError("the poison image was never skipped")
    assert crashes == jobqueue.MAX_CRASHES
    db = open_database(db_path)
    try:
        with db.session() as s:
            rows = s.execute(select(ImageRow.rel_path, Job.state, Job.error, Job.attempts)
                             .join(Job, Job.image_id == ImageRow.id)
                             .join(Deployment, Deployment.id == ImageRow.deployment_id)).all()
    finally:
        db.close()
    by_name = {rel: (state, error, attempts) for rel, state, error, attempts in rows}
    state, error, attempts = by_name.pop(victim.name)
    assert state == "failed" and "crashed" in error and attempts == jobqueue.MAX_CRASHES
    assert all(state == "done" for state, _, _ in by_name.values()), by_name
    assert len(by_name) == 4
