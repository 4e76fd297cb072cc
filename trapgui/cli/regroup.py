"""The night cut-off hour on the command line: a catalogued trap scanned with another hour
than its nights were made with is regrouped (``pipeline.night_regroup``, the job the window
runs when the setting changes), and the CLI prints the same sentence."""

from __future__ import annotations

from collections.abc import Sequence

from trapgui.core.jobs import run_job


def apply_cutoff(db, hour: int, deployment_ids: Sequence[int] | None, reports=()) -> str | None:
    """Regroup those traps (all when None) whose hour differs; the sentence, or None when
    none did. ``reports`` (``ScanReport``s) get their night counts brought up to date."""
    from trapgui.pipeline.night_regroup import pending_traps, regroup_job

    if not pending_traps(db, hour, deployment_ids):
        return None
    summary = run_job(regroup_job(db, hour, deployment_ids))
    after = {t.deployment_id: t.nights_after for t in summary.traps}
    for report in reports:
        if report.deployment_id in after:
            report.nights, report.cutoff_hour = after[report.deployment_id], hour
    return summary.describe()


def pending_note(db, hour: int) -> str | None:
    """A line for `trapgui nights` when some traps' nights were made with another hour."""
    from trapgui.pipeline.night_regroup import pending_traps

    names = pending_traps(db, hour)
    if not names:
        return None
    shown = ", ".join(f"'{n}'" for n in names[:5]) + (" …" if len(names) > 5 else "")
    return (f"note: the nights of {len(names)} trap{'s' * (len(names) != 1)} ({shown}) were "
            f"made with another cut-off hour than the setting ({hour:02d}:00); "
            "`trapgui nights --regroup` applies the setting to them, keeping every result.")
