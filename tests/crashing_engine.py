"""A processing process whose detector crashes the interpreter (a real SIGSEGV, as a broken
native decoder or driver would) whenever one poison image is on the device.

    python -m tests.crashing_engine DB FOLDER POISON_WIDTH
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trapgui.db import open_database  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402
from trapgui.pipeline.engine import Engine  # noqa: E402
from trapgui.pipeline.model_set import ModelSet  # noqa: E402
from trapgui.pipeline.spec import PipelineSpec  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402


class CrashingDetector(BuiltinDetector):
    def __init__(self, poison_width: int, **kw):
        super().__init__(**kw)
        self.poison_width = poison_width

    def detect(self, images):
        if any(int(t.shape[-1]) == self.poison_width for t in images):
            ctypes.string_at(0)  # segmentation fault: no Python exception, no cleanup
        return super().detect(images)


def main() -> int:
    db_path, folder, poison = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = open_database(db_path)
    dep = scan_folder(db, folder).deployment_id
    engine = Engine(db, None, PipelineSpec(detection_batch_size=4, loader_threads=1),
                    devices="cpu", model_loader=lambda device: ModelSet(
                        CrashingDetector(poison, device=device)))
    engine.enqueue_deployment(dep)
    summary = engine.run()
    print(f"{summary.status} {summary.done} {summary.failed}")
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
