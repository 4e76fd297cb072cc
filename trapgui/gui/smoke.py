"""`trapgui --smoke`: proves an installed build works end to end, without a display.

Starts Qt offscreen, builds the real main window, opens the bundled ``resources/smoke.jpg`` as
a trap folder in a temporary database and settings folder, processes it with the built-in
detector (no weights needed) through the same scan and run controllers a user drives, and
exits 0 only if the image was processed. The user's own settings and database are untouched.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

TIMEOUT_S = 300


def run_smoke() -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from trapgui.gui.main_window import MainWindow
    from trapgui.gui.resources import resource_path
    from trapgui.services.app_services import Services
    from trapgui.services.processing_types import RunScope

    from PySide6.QtCore import qInstallMessageHandler

    def quiet(_mode, _context, message):
        # the offscreen platform's "does not support propagateSizeHints()" is noise here
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(quiet)
    started = time.perf_counter()
    image = resource_path("smoke.jpg")
    if not image.is_file():
        print(f"trapgui smoke: FAILED: the bundled test image {image} is missing", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="trapgui-smoke-"))
    outcome = {"code": 1, "message": "did not finish"}
    try:
        (tmp / "trap").mkdir()
        shutil.copy2(image, tmp / "trap" / image.name)
        services = Services.create(config_dir=tmp / "config", data_dir=tmp / "data")
        s = services.settings
        s.detector, s.binary_classifier, s.species_classifier, s.order_classifier = (
            "builtin", None, None, None)
        s.device = "auto"  # an installed GPU build proves its GPU works; else CPU fallback
        app = QApplication.instance() or QApplication(sys.argv[:1])
        from trapgui.gui.launch import prepare_application

        prepare_application(app)
        window = MainWindow(services)
        window.show()
        window.start()

        def scanned(report):
            if report.found != 1:
                finish(1, f"the scan found {report.found} images instead of 1")
                return
            window.controller.start(RunScope(deployment_ids=(report.deployment_id,),
                                             include_undated=True, description="smoke test"))

        def finished(summary):
            if summary is not None and summary.status == "finished" and summary.done == 1:
                devices = ", ".join(f"{d.device} ({d.name})" for d in summary.devices) or "?"
                finish(0, f"1 image processed on {devices}, {summary.detections} detections")
            elif summary is not None:
                finish(1, f"run {summary.status}: {summary.done} done, {summary.failed} failed")

        def finish(code, message):
            outcome.update(code=code, message=message)
            app.quit()

        window.scanner.scanFinished.connect(scanned)
        window.scanner.scanFailed.connect(lambda _f, exc: finish(1, f"scan failed: {exc}"))
        window.controller.finished.connect(finished)
        window.controller.error.connect(lambda exc: finish(1, f"processing failed: {exc}"))
        QTimer.singleShot(TIMEOUT_S * 1000, lambda: finish(1, f"timed out after {TIMEOUT_S} s"))
        window.open_folders([str(tmp / "trap")])
        app.exec()
        window.controller.wait(30)
        from trapgui.gui.job_runner import job_runner

        job_runner().wait(10)
        window.close()
        services.close()
    except Exception as exc:  # noqa: BLE001 - a smoke test reports, it does not trace back
        outcome.update(code=1, message=f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    verdict = "OK" if outcome["code"] == 0 else "FAILED"
    print(f"trapgui smoke: {verdict}: {outcome['message']} "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr if outcome["code"] else sys.stdout)
    return outcome["code"]
