"""A whole job drains through the real worker over loopback HTTP, every task is answered
exactly once, and the posted results equal what the local engine stores for the same images."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from trapgui.db.tables import Deployment, Detection, Image, RemoteTask

pytestmark = pytest.mark.timeout(240)


def _local_engine_results(remote_images, ids, model_store, tmp_path, pipe):
    """Process the same files as a local trap folder with the engine."""
    from trapgui.db import open_database
    from trapgui.pipeline import Engine
    from trapgui.scan.indexer import scan_folder

    folder = tmp_path / "local-trap"
    folder.mkdir()
    for image_id in ids:
        (folder / f"{image_id}.jpg").write_bytes(remote_images[image_id])
    db = open_database(tmp_path / "local.sqlite3")
    try:
        report = scan_folder(db, folder)
        engine = Engine(db, model_store, pipe.spec(), devices="cpu")
        engine.enqueue_deployment(report.deployment_id)
        summary = engine.run()
        assert summary.status == "finished"
        with db.session() as s:
            rows = s.execute(select(Image.rel_path, Detection.x1, Detection.y1, Detection.x2,
                                    Detection.y2, Detection.score, Detection.binary_label,
                                    Detection.top_label, Detection.top_score)
                             .join(Detection, Detection.image_id == Image.id)
                             .order_by(Image.rel_path, Detection.id)).all()
    finally:
        db.close()
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r[0].rsplit(".", 1)[0], []).append(r[1:])
    return out


def test_job_drains_answers_once_and_matches_local_engine(server, make_worker, remote_images,
                                                           cheap_ids, model_store, db, tmp_path):
    ids = cheap_ids[:2]
    server.add_job(11, "panama_moths_2023", ids)
    worker, events = make_worker(server, slugs=("panama_moths_2023",), batch_size=2)
    summary = worker.run()

    assert summary.error is None
    assert summary.done == 2 and summary.failed == 0
    assert summary.posted == 2 and summary.unposted == 0
    answers = server.answers(11)
    assert sorted(answers) == sorted(server.state.jobs[11].tasks)
    assert all(len(a) == 1 for a in answers.values()), answers
    assert server.state.rejected_results == []
    assert server.state.auth_on_images == 0  # the token never travels with image downloads

    # Outbox: every task recorded and posted
    with db.session() as s:
        states = s.execute(select(RemoteTask.task_id, RemoteTask.state)).all()
    assert {st for _, st in states} == {"posted"} and len(states) == 2

    # The remote images are in the catalogue as a "remote" deployment, with detections.
    with db.session() as s:
        dep = s.execute(select(Deployment).where(Deployment.kind == "remote")).scalar_one()
        n_images = s.execute(select(Image.id).where(Image.deployment_id == dep.id)).all()
        n_dets = s.execute(select(Detection.id)).all()
    assert len(n_images) == 2
    assert "job 11" in dep.name

    # Same numbers as the local engine on the same files
    pipe = worker.pipelines["panama_moths_2023"]
    local = _local_engine_results(remote_images, ids, model_store, tmp_path, pipe)
    total_remote = species_seen = 0
    for task_id, [(subject, result)] in answers.items():
        image_id = server.state.jobs[11].tasks[task_id].image_id
        dets = result["detections"]
        total_remote += len(dets)
        want = local.get(image_id, [])
        assert len(dets) == len(want), image_id
        for d, w in zip(dets, want):
            b = d["bbox"]
            assert [b["x1"], b["y1"], b["x2"], b["y2"]] == pytest.approx(list(w[:4]), abs=1e-3)
            binary = [c for c in d["classifications"] if c["algorithm"]["key"] == pipe.binary]
            assert binary and binary[0]["classification"] == w[5]
            assert binary[0]["terminal"] is False
            species = [c for c in d["classifications"] if c["algorithm"]["key"] == pipe.species]
            if species:
                species_seen += 1
                c = species[0]
                assert c["terminal"] is True
                assert c["classification"] == w[6]
                assert max(c["scores"]) == pytest.approx(w[7], abs=1e-6)
                assert len(c["scores"]) == len(c["logits"]) == 40
                assert math.isclose(sum(c["scores"]), 1.0, abs_tol=1e-4)
            else:
                assert w[6] == w[5]  # a non-moth: only the binary label
    assert total_remote == len(n_dets) > 0
    assert species_seen > 0
