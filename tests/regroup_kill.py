"""`python -m tests.regroup_kill DB HOUR WHERE`: run the night regroup job and SIGKILL this
process ``between`` two traps (the first one committed) or ``inside`` the second trap's
transaction (images moved, tracking under way)."""

from __future__ import annotations

import os
import signal
import sys

from trapgui.core.jobs import Progress
from trapgui.db import open_database
import trapgui.pipeline.night_regroup as night_regroup


def main(db_path: str, hour: int, where: str) -> None:
    db = open_database(db_path)
    state = {"trap": 0}

    def emit(event):
        if isinstance(event, Progress) and event.unit == "traps" and event.total:
            state["trap"] = event.done
            if where == "between" and event.done == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    real = night_regroup.track_night_in

    def track_then_die(*args, **kwargs):
        result = real(*args, **kwargs)
        if where == "inside" and state["trap"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    night_regroup.track_night_in = track_then_die
    night_regroup.regroup_nights(db, hour, emit=emit)
    raise SystemExit("the regroup ended without being killed")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
