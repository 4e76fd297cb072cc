"""What the window's Export dialog calls: services.export.request / check / export_job (the job
contract), and the format table it lists."""

from __future__ import annotations

import pytest

from tests import export_fixtures as ef
from trapgui.config import Settings
from trapgui.core.errors import Cancelled
from trapgui.core.jobs import EventLog, Finished, JobControl, Progress, run_job
from trapgui.services.export_service import ExportService


@pytest.fixture
def service(db, trap_copy):
    cat = ef.build(db, trap_copy, metadata=False)
    settings = Settings(detection_threshold=0.5, classification_threshold=0.25)
    return ExportService(db, settings), cat


def test_requests_count_at_the_settings_thresholds(service, tmp_path):
    svc, cat = service
    assert [f.key for f in svc.formats()][:2] == ["detections", "occurrences"]
    req = svc.request("matrix", tmp_path / "m.csv")
    assert (req.thresholds.detection, req.thresholds.label) == (0.5, 0.25)
    row = svc.request("detections", tmp_path / "d.csv", min_score=0.3)
    assert (row.min_detection_score, row.min_label_score) == (0.3, None)
    assert svc.default_target("dwc", tmp_path).name.startswith("darwin-core-")
    assert svc.default_target("dwc", tmp_path).suffix == ".zip"
    assert [p.name for p in svc.pipelines()] == ["builtin + bin + sp"]


def test_check_finds_problems_before_the_export(service, tmp_path):
    svc, cat = service
    check = svc.check(svc.request("camtrap-dp", tmp_path / "cdp"))
    assert not check.ok and "trap 'vermont'" in check.problems[0]
    assert svc.check(svc.request("camtrap-dp", tmp_path / "no" / "cdp")).problems[0].endswith(
        "does not exist.")
    dwc = svc.check(svc.request("dwc", tmp_path / "x.zip"))
    assert dwc.ok and any("no coordinates" in w for w in dwc.warnings)
    assert dwc.pipeline_id == cat.pipeline_id


def test_export_job_reports_progress_and_cancels(service, tmp_path):
    svc, cat = service
    log = EventLog()
    result = run_job(svc.export_job(svc.request("summary", tmp_path / "s.csv")), log)
    assert result.path.is_file() and log.of(Finished)[0].result is result
    assert result.rows["taxa"] == 2  # at 0.25 Xestia (0.3) is identified: no unnamed bucket
    log = EventLog()
    run_job(svc.export_job(svc.request("megadetector", tmp_path / "md.json")), log)
    assert log.of(Progress)
    control = JobControl()
    control.cancel()
    with pytest.raises(Cancelled):
        run_job(svc.export_job(svc.request("crops", tmp_path / "crops")), None, control)
    assert not (tmp_path / "crops").exists()
